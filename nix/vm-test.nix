# NixOS VM test, run by `nix flake check` on a machine with nixpkgs and KVM.
# NOT RUN in this project's CI: nixpkgs cannot be fetched there, and Debian 12's Nix (2.8) is
# older than nixpkgs needs. What can be checked offline is: nix/data.nix and the units rendered
# from it, the TOML rendering (tests/packaging.rs), and the module evaluated with nixpkgs' real
# module system (scripts/check-module, given a nixpkgs lib directory).
#
# What an operator does: the timer fires and prunes a dangling image once Docker's disk is over
# the threshold (Docker's data root is a small filesystem of its own here), `prunegate check` by
# hand shows the module's settings, and `man prunegate` exists.
{ self }:
{ config, ... }:
let
  # The machine's own package set, for the images it loads.
  inherit (config.nodes.machine.nixpkgs) pkgs;
  # Two builds of one tag: loading the second leaves the first dangling. Nothing is pulled.
  image =
    content:
    pkgs.dockerTools.buildImage {
      name = "pg-junk";
      tag = "1";
      copyToRoot = pkgs.writeTextDir "content.txt" content;
    };
in
{
  name = "prunegate";

  nodes.machine = {
    imports = [ self.nixosModules.default ];
    virtualisation.docker.enable = true;
    # Docker's data root on a 512 MB disk of its own, so that filling it opens the disk gate.
    virtualisation.emptyDiskImages = [ 512 ];
    virtualisation.fileSystems."/var/lib/docker" = {
      device = "/dev/vdb";
      fsType = "ext4";
      autoFormat = true;
    };
    services.prunegate = {
      enable = true;
      dates = "*:*:0/20";
      randomizedDelaySec = "0";
      settings = {
        gates.live_runs.pattern = "^ci-";
        gates.grace.min_uptime = "0s";
        prune.older_than = "0s";
      };
    };
  };

  testScript = ''
    machine.wait_for_unit("docker.service")
    machine.wait_for_unit("timers.target")
    machine.succeed("systemctl list-timers --all | grep -q prunegate.timer")

    # The CLI, its man page and the module's settings are on the host.
    machine.succeed("command -v prunegate")
    machine.succeed("man -w prunegate")
    machine.succeed("prunegate check | grep -F 'gates.live_runs.pattern \"^ci-\"'")
    machine.succeed("cmp /etc/prunegate/config.toml $(systemctl cat prunegate.service | grep -o '/nix/store/[^ ]*prunegate.toml')")

    # A healthy disk: the disk gate is closed, prunegate exits 10, which the unit declares a
    # success.
    machine.succeed("systemctl start prunegate.service")
    machine.succeed("journalctl -u prunegate.service | grep -q 'gate disk'")
    machine.succeed("test \"$(systemctl show -p Result --value prunegate.service)\" = success")

    # A dangling image, and the disk over 80%: the next timer run prunes it.
    machine.succeed("docker load < ${image "first"}")
    machine.succeed("docker load < ${image "second"}")
    machine.succeed("test -n \"$(docker images -q --filter dangling=true)\"")
    machine.succeed("fallocate -l 420M /var/lib/docker/fill")
    machine.wait_until_succeeds("test -z \"$(docker images -q --filter dangling=true)\"", timeout=120)
    machine.succeed("journalctl -u prunegate.service | grep -q 'pruned'")
    machine.succeed("docker image inspect pg-junk:1")
  '';
}
