# NixOS module: services.prunegate. The unit data (timer defaults, service settings, hardening)
# and the settings -> TOML mapping live in ./data.nix, which needs only builtins and is
# evaluated for real by the test suite; this file declares options and wires them to systemd.
{
  config,
  lib,
  pkgs,
  ...
}:
let
  cfg = config.services.prunegate;
  data = import ./data.nix;
  settingsFormat = pkgs.formats.toml { };

  # The generated file is checked by prunegate itself at build time: a bad key or value fails
  # the system build, naming the key, instead of failing on the host at 3 a.m.
  configFile =
    pkgs.runCommand "prunegate.toml"
      {
        nativeBuildInputs = [ cfg.package ];
        text = data.toTOML cfg.settings;
        passAsFile = [ "text" ];
      }
      ''
        prunegate config check --config "$textPath"
        cp "$textPath" "$out"
      '';

  mkSetting =
    type: default: description:
    lib.mkOption { inherit type default description; };
in
{
  options.services.prunegate = {
    enable = lib.mkEnableOption "prunegate, gated pruning of Docker's stopped containers, dangling images and build cache";

    package = lib.mkPackageOption pkgs "prunegate" { };

    settings = lib.mkOption {
      description = ''
        prunegate configuration (see docs/config.md); any key of the TOML file may be set,
        the main ones are declared here. The file is validated with `prunegate config check`
        when the system is built.
      '';
      default = { };
      type = lib.types.submodule {
        freeformType = settingsFormat.type;
        options = {
          gates.disk.used_percent =
            mkSetting (lib.types.ints.between 0 100) data.settingsDefaults.gates.disk.used_percent
              "Prune only when the filesystem holding Docker's data is at least this full (percent, as df).";
          gates.disk.inodes_used_percent =
            mkSetting (lib.types.ints.between 0 100) data.settingsDefaults.gates.disk.inodes_used_percent
              "Or when at least this share of its inodes is used (percent, as df -i).";
          gates.live_runs.pattern =
            mkSetting lib.types.str data.settingsDefaults.gates.live_runs.pattern
              "Regular expression over swarm stack and compose project names that marks a CI run; a live match blocks pruning.";
          prune.older_than =
            mkSetting lib.types.str data.settingsDefaults.prune.older_than
              "Only prune objects older than this (Docker duration syntax, e.g. 24h).";
        };
      };
      example = {
        gates.live_runs.pattern = "^(ci|pr)-[0-9]+$";
        prune.older_than = "48h";
      };
    };

    dates = lib.mkOption {
      type = lib.types.singleLineStr;
      default = data.timerDefaults.dates;
      description = "When to run, as a systemd calendar expression (see systemd.time(7)). Runs whose gates are closed cost a few API requests.";
    };

    randomizedDelaySec = lib.mkOption {
      type = lib.types.singleLineStr;
      default = data.timerDefaults.randomizedDelaySec;
      example = "45min";
      description = "Random delay added to each run (systemd.timer RandomizedDelaySec), to spread a fleet's runs.";
    };

    persistent = lib.mkOption {
      type = lib.types.bool;
      default = data.timerDefaults.persistent;
      description = "Catch up on a run missed while the machine was off (systemd.timer Persistent).";
    };
  };

  config = lib.mkIf cfg.enable {
    warnings = lib.optional (config.virtualisation.docker.autoPrune.enable or false) ''
      services.prunegate and virtualisation.docker.autoPrune are both enabled: autoPrune runs
      `docker system prune` without any gate and will evict the cache prunegate protects.
      Set virtualisation.docker.autoPrune.enable = false.
    '';

    systemd.services.prunegate = {
      description = data.unitSection.Description;
      documentation = [ "man:prunegate(1)" ];
      wants = [ "docker.service" ];
      after = [ "docker.service" ];
      startAt = cfg.dates;
      restartIfChanged = false;
      serviceConfig =
        data.serviceConfig {
          prunegate = lib.getExe cfg.package;
          inherit configFile;
        }
        // {
          # The directories of a configured metrics file or audit log must be writable too.
          ReadWritePaths =
            data.hardening.ReadWritePaths
            ++ map dirOf (
              lib.filter (p: p != null) [
                (cfg.settings.metrics.path or null)
                (cfg.settings.audit.path or null)
              ]
            );
        };
    };

    systemd.timers.prunegate.timerConfig = {
      RandomizedDelaySec = cfg.randomizedDelaySec;
      Persistent = cfg.persistent;
    };
  };
}
