# NixOS module: services.prunegate. The unit data (timer defaults, service settings, hardening,
# the network a daemon address needs) lives in ./data.nix, which needs only builtins and is
# evaluated for real by the test suite; this file declares options and wires them to systemd.
#
# Imported from the flake (`prunegate.nixosModules.default`) the package defaults to the flake's
# own build; imported as a plain file it defaults to `pkgs.prunegate` when the system's pkgs has
# one, else to ./package.nix built with those pkgs. It never sets `nixpkgs.*`, so it works with
# a read-only `nixpkgs.pkgs` (and in `testers.runNixOSTest`).
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

  # A certificate directory given as a Nix path (or a string into the store) is copied into the
  # world-readable /nix/store, key.pem included: refused by an assertion below.
  isStorePath = p: builtins.isPath p || lib.hasPrefix builtins.storeDir (toString p);
  swarmCerts = cfg.settings.swarm.cert_path or null;
  dockerCerts = cfg.settings.docker.cert_path or null;
  # The worker's certificates reach the unit as credentials (LoadCredential=): the key stays
  # root-only where it is, the DynamicUser reads systemd's copy, and the config names that copy.
  effectiveSettings =
    if swarmCerts == null then
      cfg.settings
    else
      lib.recursiveUpdate cfg.settings { swarm.cert_path = data.credentialsDir; };

  # prunegate runs on the build machine to validate the file: in a cross build the host's binary
  # cannot run there, so the build platform's own build of the same package checks it.
  checker =
    if pkgs.stdenv.buildPlatform.canExecute pkgs.stdenv.hostPlatform then
      cfg.package
    else
      pkgs.buildPackages.callPackage ./package.nix { };

  # The settings rendered by nixpkgs' TOML format (RFC 42), then checked by prunegate itself at
  # build time: a bad key or value fails the system build naming the option, instead of failing
  # on the host at 3 a.m. The unit and /etc/prunegate/config.toml use this same file.
  configFile =
    pkgs.runCommand "prunegate.toml"
      {
        nativeBuildInputs = [ checker ];
        rendered = settingsFormat.generate "prunegate-settings.toml" effectiveSettings;
        preferLocalBuild = true;
      }
      ''
        cp "$rendered" prunegate.toml
        if ! report=$(prunegate config check --config prunegate.toml 2>&1); then
          echo "services.prunegate.settings is not a valid prunegate configuration:" >&2
          echo "$report" | sed 's|prunegate.toml|services.prunegate.settings|g' >&2
          exit 1
        fi
        cp prunegate.toml "$out"
      '';

  mkSetting =
    type: default: description:
    lib.mkOption { inherit type default description; };

  # A Docker daemon on this host: the unit joins its group to reach the socket.
  localDocker = config.virtualisation.docker.enable or false;
  remoteHost = (cfg.settings.docker.host or "") != "" && data.network cfg.settings != { };
  # The system's units exist for a daemon of the system's (local, or elsewhere over TCP).
  systemEngine = localDocker || remoteHost;
  # A user unit as NixOS declares it, from the plain user unit's data.
  userUnit = serviceConfig: {
    description = data.userUnitSection.Description;
    documentation = [ data.userUnitSection.Documentation ];
    unitConfig.ConditionPathExists = data.userUnitSection.ConditionPathExists;
    inherit serviceConfig;
  };
  userArgs = {
    prunegate = lib.getExe cfg.package;
    inherit configFile;
  };
in
{
  options.services.prunegate = {
    enable = lib.mkEnableOption "prunegate, gated pruning of Docker's stopped containers, dangling images and build cache";

    package = lib.mkPackageOption pkgs "prunegate" { } // {
      default = pkgs.prunegate or (pkgs.callPackage ./package.nix { });
      defaultText = lib.literalExpression "pkgs.prunegate or (pkgs.callPackage ./nix/package.nix { })";
    };

    settings = lib.mkOption {
      description = ''
        prunegate configuration (see docs/config.md); any key of the TOML file may be set
        (lists, floats and nested tables included), the main ones are declared here. The file is
        validated with `prunegate config check` when the system is built, and installed as
        /etc/prunegate/config.toml, so `prunegate check` by hand sees what the timer uses.
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
          retention.enabled =
            mkSetting lib.types.bool data.settingsDefaults.retention.enabled
              "Opt in to removing cold tagged images between the watermarks (docs/retention.md); off, nothing tagged is ever removed.";
          retention.high_percent =
            mkSetting (lib.types.ints.between 0 100) data.settingsDefaults.retention.high_percent
              "Disk Use% (as df) at which the retention class starts.";
          retention.low_percent =
            mkSetting (lib.types.ints.between 0 100) data.settingsDefaults.retention.low_percent
              "Disk Use% it frees down to, by the images' projected unique bytes; below high_percent.";
          retention.min_idle =
            mkSetting lib.types.str data.settingsDefaults.retention.min_idle
              "Time since an image was last used (or first seen) before it may go; at least prune.older_than.";
          retention.keep =
            mkSetting (lib.types.listOf lib.types.str) data.settingsDefaults.retention.keep
              "Regular expressions over repository:tag; an image with a matching tag always stays.";
          retention.keep_newest =
            mkSetting lib.types.ints.unsigned data.settingsDefaults.retention.keep_newest
              "The newest images of each repository that always stay.";
          retention.build_bases_kept =
            mkSetting lib.types.bool data.settingsDefaults.retention.build_bases_kept
              "True once keep names every image builds use as a base or stage; false: a build counts as a use of every image (docs/retention.md).";
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

    rootless.enable = lib.mkOption {
      type = lib.types.bool;
      default = false;
      description = ''
        Also run prunegate for every user who has a rootless engine (rootless Docker's
        docker.sock or Podman's podman/podman.sock in their XDG_RUNTIME_DIR): a systemd user
        timer and service with the same settings and schedule (and, with the retention class,
        the user's recorder). Each run finds the user's own socket, keeps its state in
        ~/.local/state/prunegate and its lock in the runtime directory; users without a rootless
        engine are skipped. With only rootless engines on the host, no system unit is made.
      '';
    };

    persistent = lib.mkOption {
      type = lib.types.bool;
      default = data.timerDefaults.persistent;
      description = "Catch up on a run missed while the machine was off (systemd.timer Persistent).";
    };
  };

  config = lib.mkIf cfg.enable {
    assertions = [
      {
        assertion = swarmCerts == null || !(isStorePath swarmCerts);
        message = ''
          services.prunegate.settings.swarm.cert_path is a Nix path or a store path: its key.pem
          would be copied into the world-readable /nix/store. Give the directory as a string
          outside the store (e.g. "/etc/prunegate/worker", root-only); the unit receives the files
          through LoadCredential.
        '';
      }
      {
        assertion = dockerCerts == null || !(isStorePath dockerCerts);
        message = ''
          services.prunegate.settings.docker.cert_path is a Nix path or a store path: its key.pem
          would be copied into the world-readable /nix/store. Give the directory as a string
          outside the store.
        '';
      }
      {
        assertion = systemEngine || cfg.rootless.enable;
        message = ''
          services.prunegate needs a Docker daemon: set virtualisation.docker.enable = true,
          point services.prunegate.settings.docker.host at one elsewhere ("tcp://HOST:PORT"),
          or set services.prunegate.rootless.enable = true for users' rootless engines.
        '';
      }
    ];

    warnings = lib.optional (config.virtualisation.docker.autoPrune.enable or false) ''
      services.prunegate and virtualisation.docker.autoPrune are both enabled: autoPrune runs
      `docker system prune` without any gate and will evict the cache prunegate protects.
      Set virtualisation.docker.autoPrune.enable = false.
    '';

    # The operator's tools: `prunegate check`, `reclaim`, the man page and shell completions.
    environment.systemPackages = [ cfg.package ];
    environment.etc."prunegate/config.toml".source = configFile;

    systemd.services.prunegate = lib.mkIf systemEngine {
      description = data.unitSection.Description;
      documentation = [ data.unitSection.Documentation ];
      wants = lib.optional localDocker "docker.service";
      after = lib.optional localDocker "docker.service";
      startAt = cfg.dates;
      # A switch must neither restart nor stop a prune in progress (as nixpkgs' docker-prune).
      restartIfChanged = false;
      unitConfig.X-StopOnRemoval = false;
      serviceConfig =
        data.serviceConfig {
          prunegate = lib.getExe cfg.package;
          inherit configFile;
        }
        // {
          # The group exists only with a local Docker; a remote daemon is reached over TCP.
          SupplementaryGroups = lib.optionals localDocker data.hardening.SupplementaryGroups;
          LoadCredential = lib.optionals (swarmCerts != null) (data.loadCredentials (toString swarmCerts));
          # The directories of a configured metrics file or audit log must be writable too.
          ReadWritePaths = map dirOf (
            lib.filter (p: p != null) [
              (cfg.settings.metrics.path or null)
              (cfg.settings.audit.path or null)
            ]
          );
        }
        # Exactly what a tcp:// docker.host needs, and nothing for a Unix socket.
        // data.network cfg.settings;
    };

    # With the retention class on, image use is recorded as it happens (`prunegate record`):
    # the daemon keeps only its last 256 events, and a timer alone would lose short-lived use.
    systemd.services.prunegate-record =
      lib.mkIf (systemEngine && (cfg.settings.retention.enabled or false))
        {
          description = data.recordUnitSection.Description;
          documentation = [ data.recordUnitSection.Documentation ];
          wants = lib.optional localDocker "docker.service";
          after = lib.optional localDocker "docker.service";
          wantedBy = [ "multi-user.target" ];
          serviceConfig =
            data.recordServiceConfig {
              prunegate = lib.getExe cfg.package;
              inherit configFile;
            }
            // {
              SupplementaryGroups = lib.optionals localDocker data.hardening.SupplementaryGroups;
              LoadCredential = lib.optionals (swarmCerts != null) (data.loadCredentials (toString swarmCerts));
            }
            // data.network cfg.settings;
        };

    # The run lock, root-owned in a directory only root can write (src/lock.rs refuses a lock
    # file others could replace); the unit opens it read-only.
    systemd.tmpfiles.rules = lib.optionals (systemEngine && (cfg.settings.lock.enabled or true)) (
      data.tmpfiles (cfg.settings.lock.path or data.settingsDefaults.lock.path)
    );

    # Users' rootless engines: the plain user units' service data, the module's settings file.
    systemd.user.services.prunegate = lib.mkIf cfg.rootless.enable (
      userUnit (data.userServiceConfig userArgs) // { startAt = cfg.dates; }
    );
    systemd.user.timers.prunegate = lib.mkIf cfg.rootless.enable {
      timerConfig = {
        RandomizedDelaySec = cfg.randomizedDelaySec;
        Persistent = cfg.persistent;
      };
    };
    systemd.user.services.prunegate-record = lib.mkIf (
      cfg.rootless.enable && (cfg.settings.retention.enabled or false)
    ) (userUnit (data.userRecordServiceConfig userArgs) // { wantedBy = [ "default.target" ]; });

    systemd.timers.prunegate = lib.mkIf systemEngine {
      description = data.timerUnitSection.Description;
      documentation = [ data.timerUnitSection.Documentation ];
      timerConfig = {
        RandomizedDelaySec = cfg.randomizedDelaySec;
        Persistent = cfg.persistent;
      };
    };
  };
}
