# NixOS VM test, run by `nix flake check` on a machine with nixpkgs and KVM.
# NOT RUN in this project's CI: nixpkgs cannot be fetched there. CI evaluates nix/data.nix and
# checks the units rendered from it instead (tests/packaging.rs).
{ self }:
{
  name = "prunegate";

  nodes.machine = {
    imports = [ self.nixosModules.default ];
    virtualisation.docker.enable = true;
    services.prunegate = {
      enable = true;
      settings.gates.live_runs.pattern = "^ci-";
    };
  };

  testScript = ''
    machine.wait_for_unit("docker.service")
    machine.wait_for_unit("timers.target")
    machine.succeed("systemctl list-timers --all | grep -q prunegate.timer")

    # A fresh VM's disk is far below 80%: the disk gate is closed, prunegate exits 10, which
    # the unit declares a success.
    machine.succeed("systemctl start prunegate.service")
    machine.succeed("journalctl -u prunegate.service | grep -q 'gate disk'")
    machine.succeed("test \"$(systemctl show -p Result --value prunegate.service)\" = success")

    # The generated config is the one the module rendered, and prunegate accepts it.
    machine.succeed("prunegate config check --config $(systemctl cat prunegate.service | grep -o '/nix/store/[^ ]*prunegate.toml')")
  '';
}
