{
  description = "cribcall-quic: secure QUIC control channel for CribCall (Rust napi-rs addon + TypeScript)";

  inputs = {
    nixpkgs.url = "github:NixOS/nixpkgs/nixos-unstable";
    flake-utils.url = "github:numtide/flake-utils";
  };

  outputs = { self, nixpkgs, flake-utils }:
    flake-utils.lib.eachDefaultSystem (system:
      let
        pkgs = import nixpkgs { inherit system; };
        lib = pkgs.lib;

        # What BoringSSL (built by quiche's boring-sys) needs: cmake + ninja, a C/C++
        # compiler, perl, libclang for bindgen, and git (boring-sys runs `git init` on
        # its copy of the BoringSSL sources).
        nativeBuildDeps = [
          pkgs.git
          pkgs.cmake
          pkgs.ninja
          pkgs.clang
          pkgs.perl
          pkgs.pkg-config
          pkgs.rustPlatform.bindgenHook
        ];

        # napi-rs names the addon <binaryName>.<platform>-<arch>[-<abi>].node
        napiPlatform = {
          "x86_64-linux" = "linux-x64-gnu";
          "aarch64-linux" = "linux-arm64-gnu";
          "x86_64-darwin" = "darwin-x64";
          "aarch64-darwin" = "darwin-arm64";
        }.${system} or system;

        cargoToml = builtins.fromTOML (builtins.readFile ./Cargo.toml);
      in
      {
        # nix build: the release addon, installed as lib/cribcall-quic.<platform>.node
        packages.default = pkgs.rustPlatform.buildRustPackage {
          pname = "cribcall-quic-native";
          version = cargoToml.workspace.package.version;
          src = lib.cleanSourceWith {
            src = ./.;
            filter = path: type:
              let rel = lib.removePrefix (toString ./. + "/") (toString path);
              in rel == "Cargo.toml" || rel == "Cargo.lock" || rel == "native" || lib.hasPrefix "native/" rel;
          };
          cargoLock.lockFile = ./Cargo.lock;
          cargoBuildFlags = [ "-p" "cribcall-quic-native" ];
          # the crates' tests drive real QUIC over loopback sockets; run them outside the sandbox
          doCheck = false;
          nativeBuildInputs = nativeBuildDeps;
          # (on macOS, napi-build already links with -undefined dynamic_lookup)
          buildInputs = lib.optionals pkgs.stdenv.hostPlatform.isDarwin [ pkgs.libiconv ];
          installPhase = ''
            runHook preInstall
            lib_file=$(find target -path '*/release/*' \( -name 'libcribcall_quic_native.so' -o -name 'libcribcall_quic_native.dylib' \) | head -n 1)
            if [ -z "$lib_file" ]; then
              echo "libcribcall_quic_native not found under target/" >&2
              exit 1
            fi
            install -Dm755 "$lib_file" "$out/lib/cribcall-quic.${napiPlatform}.node"
            runHook postInstall
          '';
          meta = {
            description = "napi-rs addon of cribcall-quic (QUIC via quiche/BoringSSL)";
            license = lib.licenses.mit;
          };
        };

        # nix develop: everything `npm run build`, `npm test` and `npm run lint` need
        devShells.default = pkgs.mkShell {
          packages = nativeBuildDeps ++ [
            pkgs.rustc
            pkgs.cargo
            pkgs.clippy
            pkgs.rustfmt
            pkgs.nodejs_22
            pkgs.llvmPackages.libclang
            pkgs.binutils
            pkgs.go # npm run lint:actions builds actionlint
            pkgs.shellcheck
          ];
          LIBCLANG_PATH = "${pkgs.llvmPackages.libclang.lib}/lib";
          shellHook = ''
            echo "cribcall-quic dev shell: $(node --version), $(rustc --version), $(cmake --version | head -n 1)"
          '';
        };

        formatter = pkgs.nixpkgs-fmt;
      });
}
