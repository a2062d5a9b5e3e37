# Evaluates nix/module.nix (and the flake's nixosModules.default) with nixpkgs' real module
# system, the way NixOS does, with stubs only for the NixOS option trees the module writes into
# and for the few pkgs attributes it uses. Needs a nixpkgs `lib` directory, which CI does not
# have (nothing can fetch nixpkgs there): run it with scripts/check-module PATH-TO-NIXPKGS-LIB.
# Returns a list of failed checks (empty when all pass), each naming the finding it guards.
{ libPath }:
let
  lib = import libPath;
  inherit (lib) mkOption types;

  fakeDrv = name: {
    type = "derivation";
    inherit name;
    outPath = "/nix/store/00000000000000000000000000000000-${name}";
    meta.mainProgram = name;
  };
  package = fakeDrv "prunegate";

  # nixpkgs' TOML format: the same value type (RFC 42), and a generator whose output here is the
  # JSON that nixpkgs hands to json2toml (the round trip through json2toml itself is checked in
  # tests/packaging.rs).
  tomlValue = types.oneOf [
    types.bool
    types.int
    types.float
    types.str
    types.path
    (types.attrsOf tomlValue)
    (types.listOf tomlValue)
  ];
  pkgs = {
    formats.toml = _: {
      type = tomlValue;
      generate = name: value: fakeDrv name // { json = builtins.toJSON value; };
    };
    runCommand =
      name: env: script:
      fakeDrv name // { inherit env script; };
    callPackage = _: _: package;
    buildPackages.callPackage = _: _: fakeDrv "prunegate-build";
    stdenv.buildPlatform.canExecute = _: true;
    stdenv.hostPlatform = { };
  };

  # The NixOS option trees the module defines into, declared the way NixOS declares them where
  # it matters: `nixpkgs.overlays` read-only, as with `nixpkgs.pkgs` set (runNixOSTest does).
  stubs = {
    options = {
      assertions = mkOption {
        type = types.listOf types.unspecified;
        default = [ ];
      };
      warnings = mkOption {
        type = types.listOf types.str;
        default = [ ];
      };
      environment.systemPackages = mkOption {
        type = types.listOf types.package;
        default = [ ];
      };
      environment.etc = mkOption {
        type = types.attrsOf (types.submodule { freeformType = types.lazyAttrsOf types.anything; });
        default = { };
      };
      systemd.services = mkOption {
        type = types.attrsOf (types.submodule { freeformType = types.lazyAttrsOf types.anything; });
        default = { };
      };
      systemd.user.services = mkOption {
        type = types.attrsOf (types.submodule { freeformType = types.lazyAttrsOf types.anything; });
        default = { };
      };
      systemd.user.timers = mkOption {
        type = types.attrsOf (types.submodule { freeformType = types.lazyAttrsOf types.anything; });
        default = { };
      };
      systemd.tmpfiles.rules = mkOption {
        type = types.listOf types.str;
        default = [ ];
      };
      systemd.timers = mkOption {
        type = types.attrsOf (types.submodule { freeformType = types.lazyAttrsOf types.anything; });
        default = { };
      };
      virtualisation.docker.enable = mkOption {
        type = types.bool;
        default = false;
      };
      virtualisation.docker.autoPrune.enable = mkOption {
        type = types.bool;
        default = false;
      };
      nixpkgs.overlays = mkOption {
        type = types.listOf types.unspecified;
        readOnly = true;
      };
    };
    config.nixpkgs.overlays = [ ];
  };

  flake = (import ../../flake.nix).outputs {
    self = flake;
    nixpkgs = { inherit lib; };
  };

  eval =
    module: host:
    (lib.evalModules {
      modules = [
        stubs
        module
        host
      ];
      specialArgs = { inherit pkgs; };
    }).config;

  docker = {
    virtualisation.docker.enable = true;
    services.prunegate.enable = true;
  };
  tried = x: (builtins.tryEval (builtins.deepSeq x x)).success;
  failedAssertions = c: map (a: a.message) (lib.filter (a: !a.assertion) c.assertions);

  fromFlake = eval flake.nixosModules.default docker;
  plain = eval ../../nix/module.nix docker;
  svc = plain.systemd.services.prunegate;
  tcp = eval ../../nix/module.nix {
    virtualisation.docker.enable = true;
    services.prunegate = {
      enable = true;
      settings.docker.host = "tcp://10.0.0.1:2376";
    };
  };
  noDocker = eval ../../nix/module.nix { services.prunegate.enable = true; };
  storeCerts = eval ../../nix/module.nix {
    virtualisation.docker.enable = true;
    services.prunegate = {
      enable = true;
      settings.swarm.managers = [ "tcp://10.0.0.1:7676" ];
      settings.swarm.cert_path = ./.;
    };
  };
  worker = eval ../../nix/module.nix {
    virtualisation.docker.enable = true;
    services.prunegate = {
      enable = true;
      settings.swarm.managers = [ "tcp://10.0.0.1:7676" ];
      settings.swarm.cert_path = "/etc/prunegate/worker";
    };
  };
  lists = eval ../../nix/module.nix {
    virtualisation.docker.enable = true;
    services.prunegate = {
      enable = true;
      settings.retention.keep = [
        "^registry.example/base/"
        "^postgres:"
      ];
      settings.retention.ratio = 0.5;
      settings.swarm.managers = [ "tcp://10.0.0.1:2376" ];
    };
  };

  rootlessOnly = eval ../../nix/module.nix {
    services.prunegate = {
      enable = true;
      rootless.enable = true;
      settings.retention.enabled = true;
    };
  };
  rootlessToo = eval ../../nix/module.nix {
    virtualisation.docker.enable = true;
    services.prunegate = {
      enable = true;
      rootless.enable = true;
    };
  };

  checks = {
    "23: rootless alone needs no system daemon, and makes no system unit" =
      failedAssertions rootlessOnly == [ ]
      && !(
        rootlessOnly.systemd.services ? prunegate
        && (rootlessOnly.systemd.services.prunegate.enable or true)
      )
      && rootlessOnly.systemd.tmpfiles.rules == [ ];
    "23: users' rootless engines get a user service on the schedule, the same settings, no user switch" =
      let
        u = rootlessOnly.systemd.user.services.prunegate;
        etc = rootlessOnly.environment.etc."prunegate/config.toml".source or "none";
      in
      lib.hasInfix " run --config ${etc}" u.serviceConfig.ExecStart
      && u.startAt == "*:0/15"
      && !(
        u.serviceConfig ? User || u.serviceConfig ? DynamicUser || u.serviceConfig ? SupplementaryGroups
      )
      && u.serviceConfig.StateDirectory == "prunegate"
      && lib.elem "|%t/podman/podman.sock" u.unitConfig.ConditionPathExists
      && lib.hasInfix " record --config " rootlessOnly.systemd.user.services.prunegate-record.serviceConfig.ExecStart;
    "23: with a system daemon too, both the system's and the users' units" =
      failedAssertions rootlessToo == [ ]
      && rootlessToo.systemd.services ? prunegate
      && rootlessToo.systemd.user.services ? prunegate
      && !(
        rootlessToo.systemd.user.services ? prunegate-record
        && (rootlessToo.systemd.user.services.prunegate-record.enable or true)
      );

    "1: the flake's module evaluates with read-only nixpkgs options" =
      tried fromFlake.systemd.services.prunegate.serviceConfig.ExecStart;
    "1: the flake's module defaults package to the flake's own build" =
      tried fromFlake.environment.systemPackages && fromFlake.environment.systemPackages == [ package ];
    "1: nix/module.nix imported alone finds a package without an overlay" =
      tried svc.serviceConfig.ExecStart;
    "2: the package is in environment.systemPackages" = plain.environment.systemPackages == [ package ];
    "3: /etc/prunegate/config.toml is the file the unit runs with" =
      let
        etc = plain.environment.etc."prunegate/config.toml".source or "none";
      in
      lib.hasInfix "--config ${etc}" svc.serviceConfig.ExecStart;
    "4: without Docker an assertion names virtualisation.docker.enable" = lib.any (
      m: lib.hasInfix "virtualisation.docker.enable" m
    ) (failedAssertions noDocker);
    "4: with Docker no assertion fails" = failedAssertions plain == [ ];
    "5: lists, floats and nested tables are accepted and rendered" =
      let
        rendered = builtins.fromJSON (
          lists.environment.etc."prunegate/config.toml".source.env.rendered.json or "{}"
        );
      in
      (rendered.retention.ratio or 0) == 0.5
      && (rendered.swarm.managers or [ ]) == [ "tcp://10.0.0.1:2376" ];
    "12: a swarm worker's managers are the addresses it may reach" =
      let
        s = lists.systemd.services.prunegate.serviceConfig;
      in
      !s.PrivateNetwork && (s.IPAddressAllow or [ ]) == [ "10.0.0.1" ];
    "6: a Unix socket keeps the network closed" =
      svc.serviceConfig.PrivateNetwork && svc.serviceConfig.RestrictAddressFamilies == [ "AF_UNIX" ];
    "6: tcp://10.0.0.1 opens IPv4/IPv6 to that address only" =
      let
        s = tcp.systemd.services.prunegate.serviceConfig;
      in
      !s.PrivateNetwork
      && (s.IPAddressAllow or [ ]) == [ "10.0.0.1" ]
      && s.IPAddressDeny == "any"
      && lib.elem "AF_INET" s.RestrictAddressFamilies;
    "22: the run lock is root's, in a directory only root writes, and the unit needs no write to it" =
      plain.systemd.tmpfiles.rules == [
        "d /run/prunegate 0755 root root -"
        "f /run/prunegate/run.lock 0644 root root -"
      ]
      && !(lib.elem "/run/lock" (svc.serviceConfig.ReadWritePaths or [ ]));
    "22: a run is bounded in time, memory and tasks" =
      svc.serviceConfig.TimeoutStartSec == "2h"
      && svc.serviceConfig ? MemoryMax
      && svc.serviceConfig ? TasksMax;
    "22: a Nix path for swarm.cert_path is refused by an assertion naming it" = lib.any (
      m: lib.hasInfix "swarm.cert_path" m
    ) (failedAssertions storeCerts);
    "22: the worker's certificates reach the unit as credentials, the config names them" =
      let
        s = worker.systemd.services.prunegate.serviceConfig;
        rendered = builtins.fromJSON (
          worker.environment.etc."prunegate/config.toml".source.env.rendered.json or "{}"
        );
      in
      failedAssertions worker == [ ]
      &&
        s.LoadCredential == [
          "ca.pem:/etc/prunegate/worker/ca.pem"
          "cert.pem:/etc/prunegate/worker/cert.pem"
          "key.pem:/etc/prunegate/worker/key.pem"
        ]
      && (rendered.swarm.cert_path or "") == "/run/credentials/prunegate.service";
    "21: the recorder runs exactly when the retention class is enabled" =
      let
        r = lists.systemd.services;
        on = eval ../../nix/module.nix {
          virtualisation.docker.enable = true;
          services.prunegate = {
            enable = true;
            settings.retention.enabled = true;
          };
        };
        recorder = on.systemd.services.prunegate-record or { };
      in
      !(r ? prunegate-record && (r.prunegate-record.enable or true))
      && lib.hasInfix " record --config " (recorder.serviceConfig.ExecStart or "")
      && (recorder.serviceConfig.User or "") == "prunegate"
      && (recorder.serviceConfig.Restart or "") == "on-failure";
    "7: the timer has a Description and Documentation" =
      (plain.systemd.timers.prunegate.description or "") != ""
      && (plain.systemd.timers.prunegate.documentation or [ ]) != [ ];
    "7: a switch does not stop a prune in progress (X-StopOnRemoval = false)" =
      (svc.unitConfig.X-StopOnRemoval or true) == false;
  };
in
lib.attrNames (lib.filterAttrs (_: ok: !(builtins.tryEval ok).success || !ok) checks)
