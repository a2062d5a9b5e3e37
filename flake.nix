{
  description = "prunegate: gated, surgical Docker pruning that keeps the image cache warm";

  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-unstable";

  outputs =
    { self, nixpkgs }:
    let
      systems = [
        "x86_64-linux"
        "aarch64-linux"
      ];
      forAllSystems = f: nixpkgs.lib.genAttrs systems (system: f nixpkgs.legacyPackages.${system});
    in
    {
      packages = forAllSystems (pkgs: rec {
        prunegate = pkgs.callPackage ./nix/package.nix { };
        default = prunegate;
      });

      overlays.default = final: _prev: { prunegate = final.callPackage ./nix/package.nix { }; };

      # The module with its package defaulting to this flake's build, made with the system's own
      # pkgs. It sets no `nixpkgs.*` option, so systems with a read-only `nixpkgs.pkgs` (and
      # `testers.runNixOSTest`) can import it.
      nixosModules.default =
        { lib, pkgs, ... }:
        {
          imports = [ ./nix/module.nix ];
          services.prunegate.package = lib.mkDefault (pkgs.callPackage ./nix/package.nix { });
        };

      # Not run in this project's CI (no nixpkgs there); see nix/vm-test.nix and
      # scripts/check-module for what is checked offline instead.
      checks = forAllSystems (pkgs: {
        vm-test = pkgs.testers.runNixOSTest (import ./nix/vm-test.nix { inherit self; });
        # Without Docker the module refuses to build, naming the option to set.
        docker-assertion =
          let
            system = nixpkgs.lib.nixosSystem {
              inherit (pkgs.stdenv.hostPlatform) system;
              modules = [
                self.nixosModules.default
                {
                  services.prunegate.enable = true;
                  boot.isContainer = true;
                  system.stateVersion = "25.11";
                }
              ];
            };
            failed = builtins.filter (a: !a.assertion) system.config.assertions;
            named = builtins.any (a: nixpkgs.lib.hasInfix "virtualisation.docker.enable" a.message) failed;
          in
          assert named;
          pkgs.runCommand "prunegate-docker-assertion" { } "touch $out";
      });
    };
}
