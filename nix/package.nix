{
  lib,
  stdenv,
  buildPackages,
  rustPlatform,
  installShellFiles,
}:
let
  # The man page and completions come from running the built binary. In a cross build it runs
  # under the build platform's emulator for the host (qemu-user, say); with none, they are left
  # out rather than failing the build.
  canRun = stdenv.hostPlatform.emulatorAvailable buildPackages;
  run = stdenv.hostPlatform.emulator buildPackages;
in
rustPlatform.buildRustPackage {
  pname = "prunegate";
  version = "0.1.0";

  src = lib.fileset.toSource {
    root = ../.;
    fileset = lib.fileset.unions [
      ../Cargo.toml
      ../Cargo.lock
      ../src
      ../tests
    ];
  };
  cargoLock.lockFile = ../Cargo.lock;

  nativeBuildInputs = [ installShellFiles ];

  # Unit tests only: the integration tests start their own dockerd as root.
  cargoTestFlags = [
    "--bin"
    "prunegate"
  ];

  postInstall = lib.optionalString canRun ''
    ${run} $out/bin/prunegate man > prunegate.1
    installManPage prunegate.1
    installShellCompletion --cmd prunegate \
      --bash <(${run} $out/bin/prunegate completions bash) \
      --zsh <(${run} $out/bin/prunegate completions zsh) \
      --fish <(${run} $out/bin/prunegate completions fish)
  '';

  meta = {
    description = "Gated, surgical Docker pruning that keeps the image cache warm and the disk from filling";
    license = with lib.licenses; [
      mit
      asl20
    ];
    mainProgram = "prunegate";
    platforms = lib.platforms.linux;
  };
}
