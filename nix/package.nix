{
  lib,
  rustPlatform,
  installShellFiles,
}:
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

  postInstall = ''
    $out/bin/prunegate man > prunegate.1
    installManPage prunegate.1
    installShellCompletion --cmd prunegate \
      --bash <($out/bin/prunegate completions bash) \
      --zsh <($out/bin/prunegate completions zsh) \
      --fish <($out/bin/prunegate completions fish)
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
