// swift-tools-version: 6.0
// Lethe: exact machine unlearning (S3T) and approximate unlearning, on CPU.
import PackageDescription

/// Our own code is compiled for AVX2 + FMA (any x86-64 from 2013 on). Without a
/// target CPU, Swift emits one `fmaf` call per SIMD lane (measured ~130× slower).
/// AVX-512 is used where it pays: inside OpenBLAS, which picks its kernels at run time.
let fast: [SwiftSetting] = [
    .unsafeFlags(["-target-cpu", "haswell"]),
]

let package = Package(
    name: "Lethe",
    products: [
        .executable(name: "lethe", targets: ["lethe"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-crypto", from: "3.12.3"),
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.10.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-http-types", from: "1.8.0"),
        .package(url: "https://github.com/jpsim/Yams", from: "5.0.1"),
    ],
    targets: [
        // System libraries: a module map and a shim header each, nothing else.
        .systemLibrary(name: "CBLAS", pkgConfig: "openblas",
                       providers: [.apt(["libopenblas-dev"])]),
        .systemLibrary(name: "CHDF5", pkgConfig: "hdf5-serial",
                       providers: [.apt(["libhdf5-dev"])]),
        // zlib's compress2, for the zlib-ratio membership attack (Debian zlib1g-dev).
        .systemLibrary(name: "CZlib", providers: [.apt(["zlib1g-dev"])]),
        // glibc's mallopt (see Kernels/HeapPolicy.swift).
        .systemLibrary(name: "CMalloc"),
        // What Swift built for AVX2 cannot say: oneDNN products on pre-packed frozen weights
        // (float32 or bfloat16; Debian libdnnl-dev, on libgomp) and the AVX-512 / BF16 peak loops.
        .target(name: "CKernels", cSettings: [.unsafeFlags(["-O2"])],
                linkerSettings: [.linkedLibrary("dnnl"), .linkedLibrary("gomp")]),

        // The one seeded random source and the one hex encoding, shared by every module.
        .target(name: "Support", swiftSettings: fast),
        // Tensors and the math: one operation per file, forward + backward.
        .target(name: "Kernels", dependencies: ["CBLAS", "CKernels", "CMalloc"], exclude: ["README.md"], swiftSettings: fast),
        // The HDF5 store: the only importer of CHDF5.
        .target(name: "Store", dependencies: ["CHDF5", "Support", .product(name: "Crypto", package: "swift-crypto")],
                exclude: ["README.md"], swiftSettings: fast),
        // Weight readers, tokenizers, encoder, decoder, LoRA.
        .target(name: "Models", dependencies: ["Kernels", "Support"], swiftSettings: fast),
        // Shards, slices, sequences, selection, deletion-rate theory.
        .target(name: "Planning", dependencies: ["Store", "Support",
                                                 .product(name: "Crypto", package: "swift-crypto")],
                swiftSettings: fast),
        // Stage trainer, optimiser, schedules, activation cache, baselines.
        .target(name: "Training", dependencies: ["Approximate", "Kernels", "Models", "Planning", "Store", "Support",
                                                 .product(name: "Crypto", package: "swift-crypto")],
                swiftSettings: fast),
        // Deletion engine, ledger, retraining plan.
        .target(name: "Forgetting", dependencies: ["Training", "Planning", "Store", "Support",
                                                   .product(name: "GRDB", package: "GRDB.swift"),
                                                   .product(name: "GRDBSQLite", package: "GRDB.swift"),
                                                   .product(name: "Crypto", package: "swift-crypto")],
                exclude: ["README.md"], swiftSettings: fast),
        // Lineage queries, receipts, verification.
        .target(name: "Audit", dependencies: ["Forgetting", "Kernels", "Training", "Planning", "Store", "Support",
                                             .product(name: "Crypto", package: "swift-crypto")],
                swiftSettings: fast),
        // The approximate-unlearning methods and their evaluation (membership attacks need zlib).
        .target(name: "Approximate", dependencies: ["CZlib", "Kernels", "Models", "Store", "Support",
                                                    .product(name: "Crypto", package: "swift-crypto")],
                swiftSettings: fast),
        // What the subcommands share: option groups, run access through the run guard, output.
        .target(name: "CommandSupport", dependencies: [
            "CMalloc", "Forgetting", "Kernels", "Models", "Planning", "Support", "Training",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ], swiftSettings: fast),
        // Benchmarks and experiments (`lethe bench …`): measurements printed, never asserted.
        .target(name: "Benchmarks", dependencies: [
            "CommandSupport", "Kernels", "Store", "Support", "Models", "Planning", "Training", "Forgetting",
            "Approximate", .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ], swiftSettings: fast),
        // `lethe serve`: the run's ensemble over HTTP with forgets, hot swap, metrics, an auditor page.
        .target(name: "Serving", dependencies: [
            "Audit", "CommandSupport", "Forgetting", "Kernels", "Models", "Planning", "Store", "Support", "Training",
            .product(name: "Hummingbird", package: "hummingbird"),
            .product(name: "HummingbirdCore", package: "hummingbird"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            .product(name: "Logging", package: "swift-log"),
            .product(name: "Prometheus", package: "swift-prometheus"),
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOHTTP1", package: "swift-nio"),
            .product(name: "HTTPTypes", package: "swift-http-types"),
        ], swiftSettings: fast),
        // The command-line tool: one file per subcommand.
        .executableTarget(name: "lethe", dependencies: [
            "Benchmarks", "CommandSupport", "CMalloc", "Kernels", "Store", "Support", "Models", "Planning", "Training",
            "Forgetting", "Audit", "Approximate", "Serving",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
            .product(name: "Logging", package: "swift-log"),
        ], swiftSettings: fast),

        .testTarget(name: "KernelsTests", dependencies: ["Support", "Kernels", "CKernels"], resources: [.copy("Fixtures")],
                    swiftSettings: fast),
        .testTarget(name: "StoreTests", dependencies: ["Store",
                                                     .product(name: "Crypto", package: "swift-crypto")],
                    swiftSettings: fast),
        .testTarget(name: "ModelsTests", dependencies: ["Support", "Models", "Kernels"], resources: [.copy("Fixtures")],
                    swiftSettings: fast),
        .testTarget(name: "PlanningTests", dependencies: ["RunFixtures", "Support", "Planning", "Store"], swiftSettings: fast),
        .testTarget(name: "TrainingTests", dependencies: ["RunFixtures", "Training", "Forgetting", "Models", "Planning", "Kernels", "Store"],
                    swiftSettings: fast),
        // What the tests share: a planned run with stand-in stages (TinyRun), a deterministic
        // stand-in trainer, the built `lethe` run as a process, and ledger tampering.
        .target(name: "RunFixtures", dependencies: ["Forgetting", "Training", "Planning", "Store",
                                                    .product(name: "GRDB", package: "GRDB.swift"),
                                                    .product(name: "Crypto", package: "swift-crypto")],
                path: "Tests/RunFixtures", swiftSettings: fast),
        .testTarget(name: "AuditTests", dependencies: ["Audit", "Forgetting", "Kernels", "RunFixtures", "Training", "Planning", "Store",
                                                     .product(name: "GRDB", package: "GRDB.swift")],
                    swiftSettings: fast),
        .testTarget(name: "ForgettingTests", dependencies: ["RunFixtures", "Support", "Forgetting", "Audit", "Training", "Planning", "Store", "Models",
                                                          .product(name: "GRDB", package: "GRDB.swift"),
                                                          .product(name: "Crypto", package: "swift-crypto")],
                    swiftSettings: fast),
        // Mutants of valid inputs fed to every parser of untrusted bytes (`make fuzz` runs more).
        .testTarget(name: "FuzzTests", dependencies: ["Support", "Forgetting", "Models", "Planning", "Store", "Training"],
                    swiftSettings: fast),
        // The CLI's help texts against committed copies (Tools/update_help_fixtures.sh).
        .testTarget(name: "CommandTests", dependencies: ["RunFixtures"], exclude: ["Fixtures"], swiftSettings: fast),
        .testTarget(name: "BenchmarksTests", dependencies: ["Benchmarks", "CommandSupport", "Planning", "Approximate", "Models", "Support"],
                    swiftSettings: fast),
        // `lethe serve` as a process on loopback: endpoints, bad bodies, forgets under load.
        .testTarget(name: "ServingTests", dependencies: ["RunFixtures", "Planning", "Training", "Forgetting", "Serving", "Support",
                                                        .product(name: "NIOCore", package: "swift-nio"),
                                                        .product(name: "NIOEmbedded", package: "swift-nio"),
                                                        .product(name: "NIOHTTP1", package: "swift-nio")],
                    swiftSettings: fast),
        // `lethe train --scheduler slurm` on a real one-node Slurm (Tools/slurm-local.sh), and
        // the Kubernetes manifest (parsed with Yams).
        .testTarget(name: "SchedulingTests", dependencies: ["RunFixtures", "Planning", "Training", "Forgetting", "Audit", "CommandSupport", "Store",
                                                          .product(name: "Yams", package: "Yams")],
                    swiftSettings: fast),
        .testTarget(name: "ApproximateTests", dependencies: ["Approximate", "Models", "Kernels", "Store"],
                    swiftSettings: fast),
    ]
)
