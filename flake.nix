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

      nixosModules.default = {
        imports = [ ./nix/module.nix ];
        nixpkgs.overlays = [ self.overlays.default ];
      };

      # The VM test is not run in this project's CI (no nixpkgs there); see nix/vm-test.nix.
      checks = forAllSystems (pkgs: {
        vm-test = pkgs.testers.runNixOSTest (import ./nix/vm-test.nix { inherit self; });
      });
    };
}
