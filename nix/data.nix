# The data of prunegate's NixOS module, written with nothing but `builtins` so that CI can
# evaluate it for real (nixpkgs is not available there): timer defaults, the prunegate config
# defaults, the unit sections including their hardening, and the network a configured daemon
# address needs. (The settings are rendered to TOML by nixpkgs' `formats.toml`.)
# nix/module.nix uses it for the NixOS units, and config/systemd/*.{service,timer} are rendered
# from it (scripts/render-units), so both kinds of units share one hardening.
let
  # Recursive merge of attribute sets: `b` wins, nested sets are merged.
  merge =
    a: b:
    a
    // builtins.mapAttrs (
      name: value:
      if builtins.isAttrs value && builtins.isAttrs (a.${name} or null) then
        merge a.${name} value
      else
        value
    ) b;

  # systemd unit text from [ { name = "Section"; value = { Key = value or [ values ]; }; } ].
  toUnit =
    sections:
    let
      value = v: if builtins.isBool v then (if v then "yes" else "no") else toString v;
      # A list becomes one line per item, as NixOS renders it: systemd accumulates them.
      lines =
        k: v: if builtins.isList v then map (item: "${k}=${value item}\n") v else [ "${k}=${value v}\n" ];
      section =
        name: attrs:
        "[${name}]\n"
        + builtins.concatStringsSep "" (
          builtins.concatLists (map (k: lines k attrs.${k}) (builtins.attrNames attrs))
        );
    in
    builtins.concatStringsSep "\n" (map (s: section s.name s.value) sections);
in
rec {
  inherit merge toUnit;

  # Timer options, named as in nix.gc and virtualisation.docker.autoPrune.
  # Every 15 minutes: a run whose gates are closed costs a statvfs and a few API requests, so
  # frequent checks catch pressure early; the delay spreads a fleet's runs.
  timerDefaults = {
    dates = "*:0/15";
    randomizedDelaySec = "2min";
    persistent = true;
  };

  # prunegate's own defaults (src/config.rs); tests/packaging.rs checks they agree.
  settingsDefaults = {
    docker = {
      read_timeout = "30s";
      prune_timeout = "30m";
      allow_plain_tcp = false;
      max_answer_bytes = 268435456;
    };
    gates = {
      disk = {
        enabled = true;
        used_percent = 80;
        inodes_used_percent = 80;
      };
      live_runs = {
        enabled = true;
        pattern = ".*";
      };
      converging.enabled = true;
      grace = {
        enabled = true;
        min_uptime = "15m";
      };
    };
    lock = {
      enabled = true;
      path = "/run/prunegate/run.lock";
    };
    state.dir = "/var/lib/prunegate";
    schedule = {
      cron = "0 */15 * * * *";
      random_delay = "0s";
    };
    prune = {
      older_than = "24h";
      containers = true;
      images = true;
      build_cache = true;
    };
    retention = {
      enabled = false;
      high_percent = 90;
      low_percent = 80;
      min_idle = "720h";
      keep = [ ];
      keep_newest = 2;
      build_bases_kept = false;
    };
  };

  # Sandboxing for a oneshot that talks to the Docker socket and reads filesystem usage. It needs
  # AF_UNIX to the socket (as a member of the `docker` group, not as root), read access to the
  # data root for statvfs and to the run lock (lock.path, which tmpfiles creates root-owned: see
  # `tmpfiles`), and its state directory. Everything else is denied; a metrics.path or
  # audit.path elsewhere needs ReadWritePaths.
  # Bounds: a run that hangs would keep the timer from ever firing again, so it is stopped after
  # TimeoutStartSec (2 h: three prune steps at prune_timeout's 30 min, and the reads); memory
  # and threads are bounded far above what a run uses (about 20 MB, a handful of threads).
  hardening = {
    DynamicUser = true;
    SupplementaryGroups = [ "docker" ];
    StateDirectory = "prunegate";
    StateDirectoryMode = "0700";
    UMask = "0077";
    TimeoutStartSec = "2h";
    MemoryMax = "512M";
    TasksMax = 64;
    CapabilityBoundingSet = "";
    AmbientCapabilities = "";
    NoNewPrivileges = true;
    ProtectSystem = "strict";
    ProtectHome = true;
    PrivateTmp = true;
    PrivateDevices = true;
    PrivateNetwork = true;
    PrivateUsers = false;
    IPAddressDeny = "any";
    RestrictAddressFamilies = [ "AF_UNIX" ];
    ProtectKernelTunables = true;
    ProtectKernelModules = true;
    ProtectKernelLogs = true;
    ProtectControlGroups = true;
    ProtectClock = true;
    ProtectHostname = true;
    ProtectProc = "invisible";
    RestrictNamespaces = true;
    RestrictRealtime = true;
    RestrictSUIDSGID = true;
    LockPersonality = true;
    MemoryDenyWriteExecute = true;
    RemoveIPC = true;
    DevicePolicy = "closed";
    KeyringMode = "private";
    SystemCallArchitectures = "native";
    SystemCallFilter = [
      "@system-service"
      "~@privileged @resources"
    ];
    SystemCallErrorNumber = "EPERM";
  };

  # Where systemd puts the unit's credentials (LoadCredential=): readable by the unit's
  # DynamicUser whatever the source's owner and mode, so a worker's key can stay root-only 0600
  # where the operator put it, and is never copied anywhere else.
  credentialsDir = "/run/credentials/prunegate.service";

  # LoadCredential= lines for a certificate directory in DOCKER_CERT_PATH layout: the unit sees
  # the three files in `credentialsDir`, which `swarm.cert_path` then names.
  loadCredentials =
    dir:
    map (f: "${f}:${dir}/${f}") [
      "ca.pem"
      "cert.pem"
      "key.pem"
    ];

  # systemd-tmpfiles lines for the run lock at `path`: its directory writable by root alone (so
  # nobody else can remove the file and recreate it under a deploy that holds the old one), the
  # file root-owned and readable by all (deploys and prunegate need only read it to flock it).
  tmpfiles = path: [
    "d ${dirOf path} 0755 root root -"
    "f ${path} 0644 root root -"
  ];

  # [Service] of prunegate.service. `SuccessExitStatus = 10`: a closed gate is not a failure.
  # `User=prunegate`: the same dynamic user as prunegate-record.service.
  serviceConfig =
    { prunegate, configFile }:
    {
      Type = "oneshot";
      ExecStart = "${prunegate} run --config ${configFile}";
      SuccessExitStatus = 10;
      User = "prunegate";
    }
    // hardening;

  # [Service] of prunegate-record.service: `prunegate record`, always on beside the timer when
  # the retention class is enabled (it follows the daemon's events and records image use as it
  # happens). The run's sandbox, long-running: started at boot, restarted 5 s after a failure.
  # `User=prunegate` gives it the timer's dynamic user, so both own the state directory; the
  # run's time bound does not apply (`TimeoutStartSec` of an always-on service is its start).
  recordServiceConfig =
    { prunegate, configFile }:
    builtins.removeAttrs hardening [ "TimeoutStartSec" ]
    // {
      Type = "exec";
      ExecStart = "${prunegate} record --config ${configFile}";
      User = "prunegate";
      Restart = "on-failure";
      RestartSec = "5s";
    };

  recordUnitSection = {
    Description = "Record Docker image use for prunegate's retention class as it happens";
    Documentation = "man:prunegate(1)";
    Wants = "docker.service";
    After = "docker.service";
  };

  plainRecordService =
    {
      prunegate ? "/usr/local/bin/prunegate",
      configFile ? "/etc/prunegate/config.toml",
      settings ? { },
    }:
    toUnit [
      {
        name = "Unit";
        value = recordUnitSection;
      }
      {
        name = "Service";
        value = recordServiceConfig { inherit prunegate configFile; } // network settings;
      }
      {
        name = "Install";
        value.WantedBy = "multi-user.target";
      }
    ];

  # A rootless user's units (`systemctl --user`): the same run on the same schedule against
  # the user's own engine, which prunegate finds from XDG_RUNTIME_DIR (rootless Docker's
  # docker.sock or Podman's podman/podman.sock); the config in ~/.config/prunegate/config.toml
  # (%E), the state in ~/.local/state/prunegate (StateDirectory= of a user unit, which is
  # prunegate's default for a user's own engine) and the lock in the runtime directory. A user
  # manager can neither change user nor, without unprivileged user namespaces, mount a
  # sandbox, so what stays of `hardening` is what works unprivileged: no new privileges, the
  # system-call and address-family filters (seccomp), the bounds.
  userHardening = builtins.removeAttrs hardening [
    # A user manager runs its units as that user, with no groups to add and no capabilities
    # to drop.
    "DynamicUser"
    "SupplementaryGroups"
    "CapabilityBoundingSet"
    "AmbientCapabilities"
    # Mount, network and user sandboxing: a user manager cannot set them up.
    "ProtectSystem"
    "ProtectHome"
    "PrivateTmp"
    "PrivateDevices"
    "PrivateNetwork"
    "PrivateUsers"
    "ProtectKernelTunables"
    "ProtectKernelModules"
    "ProtectKernelLogs"
    "ProtectControlGroups"
    "ProtectClock"
    "ProtectHostname"
    "ProtectProc"
    "RemoveIPC"
    "DevicePolicy"
    "KeyringMode"
    # Address filtering is the system manager's (cgroup BPF).
    "IPAddressDeny"
  ];

  userConfigFile = "%E/prunegate/config.toml";

  # Started only where the user has a rootless engine (either socket, `|`: any one will do); a
  # user without one is skipped, not failed, and never falls back to the system's daemon.
  userUnitSection = {
    Description = "Prune this user's rootless engine's stopped containers, dangling images and build cache when gated open";
    Documentation = "man:prunegate(1)";
    ConditionPathExists = [
      "|%t/docker.sock"
      "|%t/podman/podman.sock"
    ];
  };

  # [Service] of a rootless user's prunegate.service and prunegate-record.service: the system
  # units' own, less what only a system manager does (the user, and `hardening` less
  # `userHardening`).
  systemOnly = [ "User" ] ++ builtins.attrNames (removeAttrsOf hardening userHardening);
  removeAttrsOf = a: b: builtins.removeAttrs a (builtins.attrNames b);
  userServiceConfig = args: builtins.removeAttrs (serviceConfig args) systemOnly;
  userRecordServiceConfig = args: builtins.removeAttrs (recordServiceConfig args) systemOnly;

  plainUserService =
    {
      prunegate ? "/usr/local/bin/prunegate",
      configFile ? userConfigFile,
    }:
    toUnit [
      {
        name = "Unit";
        value = userUnitSection;
      }
      {
        name = "Service";
        value = userServiceConfig { inherit prunegate configFile; };
      }
    ];

  plainUserRecordService =
    {
      prunegate ? "/usr/local/bin/prunegate",
      configFile ? userConfigFile,
    }:
    toUnit [
      {
        name = "Unit";
        value = userUnitSection // {
          Description = "Record this user's rootless engine's image use for prunegate's retention class";
        };
      }
      {
        name = "Service";
        value = userRecordServiceConfig { inherit prunegate configFile; };
      }
      {
        name = "Install";
        value.WantedBy = "default.target";
      }
    ];

  # [Timer] of prunegate.timer from the three options.
  timerConfig =
    {
      dates ? timerDefaults.dates,
      randomizedDelaySec ? timerDefaults.randomizedDelaySec,
      persistent ? timerDefaults.persistent,
    }:
    {
      OnCalendar = dates;
      RandomizedDelaySec = randomizedDelaySec;
      Persistent = persistent;
    };

  # The host of a `tcp://HOST:PORT` (or `http://`) address, brackets removed; null otherwise.
  tcpHost =
    address:
    let
      bracketed = builtins.match "(tcp|http)://[[]([^]]+)[]](:[0-9]+)?/?" address;
      plain = builtins.match "(tcp|http)://([^]/:[]+)(:[0-9]+)?/?" address;
      tcp = if bracketed != null then bracketed else plain;
    in
    if tcp == null then null else builtins.elemAt tcp 1;

  # What the sandbox must open for the addresses in the settings — the daemon (`docker.host`)
  # and, on a swarm worker, the managers it asks (`swarm.managers`): nothing for a Unix socket
  # (the default); for `tcp://` addresses, IPv4/IPv6 sockets and, when every host is an IP
  # address, those addresses only (IPAddressAllow takes addresses, not names: a host name allows
  # any address, and /etc/resolv.conf is readable under ProtectSystem=strict).
  network =
    settings:
    let
      addresses = [ (settings.docker.host or "") ] ++ (settings.swarm.managers or [ ]);
      hosts = builtins.foldl' (
        acc: h: if h == null || builtins.elem h acc then acc else acc ++ [ h ]
      ) [ ] (map tcpHost addresses);
      isIP = a: builtins.match "[0-9.]+|[0-9a-fA-F:]*:[0-9a-fA-F:.]*" a != null;
    in
    if hosts == [ ] then
      { }
    else
      {
        PrivateNetwork = false;
        RestrictAddressFamilies = [
          "AF_UNIX"
          "AF_INET"
          "AF_INET6"
        ];
        IPAddressDeny = "any";
        IPAddressAllow = if builtins.all isIP hosts then hosts else [ "any" ];
      };

  # A drop-in for the plain unit that opens what `settings` needs (see `network`) and, with a
  # `swarm.cert_path`, passes its certificates as credentials: for a swarm worker,
  # `{ swarm.managers = [ "tcp://10.0.0.1:7676" ]; swarm.cert_path = "/etc/prunegate/worker"; }`.
  plainNetworkDropIn =
    settings:
    toUnit [
      {
        name = "Service";
        value =
          network settings
          // (
            if settings ? swarm.cert_path then
              { LoadCredential = loadCredentials settings.swarm.cert_path; }
            else
              { }
          );
      }
    ];

  unitSection = {
    Description = "Prune Docker's stopped containers, dangling images and build cache when gated open";
    Documentation = "man:prunegate(1)";
    Wants = "docker.service";
    After = "docker.service";
  };

  # The plain units for any distribution (config/systemd/), rendered from the same data.
  # `settings`: the prunegate settings the unit runs with, for the network its docker.host needs.
  plainService =
    {
      prunegate ? "/usr/local/bin/prunegate",
      configFile ? "/etc/prunegate/config.toml",
      settings ? { },
    }:
    toUnit [
      {
        name = "Unit";
        value = unitSection;
      }
      {
        name = "Service";
        value = serviceConfig { inherit prunegate configFile; } // network settings;
      }
    ];

  timerUnitSection = {
    Description = "Run prunegate periodically";
    Documentation = "man:prunegate(1)";
  };

  plainTimer =
    args:
    toUnit [
      {
        name = "Unit";
        value = timerUnitSection;
      }
      {
        name = "Timer";
        value = timerConfig args;
      }
      {
        name = "Install";
        value.WantedBy = "timers.target";
      }
    ];
}
