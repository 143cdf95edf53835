// swift-tools-version: 6.0
// LiteCNN — lightweight convolutional networks on the CPU: build, train, compress, run.
//
// No target passes unsafe compiler flags, so LiteCNN stays usable as a versioned dependency. The hot kernels live in the
// C target `CLiteCNNKernels`, which compiles its AVX-512/AVX2 paths with per-function `target` attributes and picks
// one at run time from CPUID: every build is fast on this CPU without `-march=native`. See docs/ARCHITECTURE.md.
import PackageDescription

let package = Package(
    name: "LiteCNN",
    platforms: [.macOS(.v15)],
    products: [
        // MARK: Libraries
        .library(name: "LiteCNN", targets: ["LiteCNN"]),
        .library(name: "LiteCNNTensor", targets: ["LiteCNNTensor"]),
        .library(name: "LiteCNNLayers", targets: ["LiteCNNLayers"]),
        .library(name: "LiteCNNModels", targets: ["LiteCNNModels"]),
        .library(name: "LiteCNNIO", targets: ["LiteCNNIO"]),
        .library(name: "LiteCNNGraph", targets: ["LiteCNNGraph"]),
        .library(name: "LiteCNNONNX", targets: ["LiteCNNONNX"]),
        .library(name: "LiteCNNRuntime", targets: ["LiteCNNRuntime"]),
        .library(name: "LiteCNNData", targets: ["LiteCNNData"]),
        .library(name: "LiteCNNTraining", targets: ["LiteCNNTraining"]),
        .library(name: "LiteCNNCompression", targets: ["LiteCNNCompression"]),
        .library(name: "LiteCNNOperators", targets: ["LiteCNNOperators"]),
        // MARK: Command-line tool
        .executable(name: "litecnn", targets: ["LiteCNNCLI"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", exact: "1.8.2"),
        .package(url: "https://github.com/apple/swift-protobuf", exact: "1.39.0"),
    ],
    targets: [
        // MARK: Kernels and tensors (level 0)
        .target(name: "CLiteCNNKernels"),
        .target(name: "LiteCNNTensor", dependencies: ["CLiteCNNKernels"]),
        // MARK: Graphs with ONNX semantics (level 1): what import, export and the runtime share
        .target(name: "LiteCNNGraph", dependencies: ["LiteCNNTensor"]),
        // MARK: Layers (level 2)
        .target(name: "LiteCNNLayers", dependencies: ["LiteCNNTensor", "LiteCNNGraph"]),
        // MARK: Models (level 3)
        .target(name: "LiteCNNModels", dependencies: ["LiteCNNLayers"]),
        // MARK: Files (safetensors, npy)
        .target(name: "LiteCNNIO", dependencies: ["LiteCNNModels"]),
        // MARK: ONNX files (protobuf code generated once by scripts/onnx/generate.sh and committed)
        .target(name: "LiteCNNONNX", dependencies: ["LiteCNNGraph", .product(name: "SwiftProtobuf", package: "swift-protobuf")]),
        // MARK: Inference runtime (level 4): compile a graph once, run it many times
        .target(name: "LiteCNNRuntime", dependencies: ["LiteCNNGraph", "LiteCNNTensor"]),
        // MARK: Data sets (level 3): readers, the built-in procedural set, augmentation, the loader
        // PNG and JPEG are decoded by the system's libpng and libjpeg(-turbo) (Debian: libpng-dev, libjpeg-dev).
        .systemLibrary(name: "CImageCodecs", pkgConfig: "libpng",
                       providers: [.apt(["libpng-dev", "libjpeg-dev"]), .brew(["libpng", "jpeg-turbo"])]),
        // libpng's and libjpeg's longjmp error handling stays in C (Swift cannot use setjmp): see Sources/CImageDecode.
        .target(name: "CImageDecode", dependencies: ["CImageCodecs"],
                linkerSettings: [.linkedLibrary("png16"), .linkedLibrary("jpeg"), .linkedLibrary("z")]),
        .target(name: "LiteCNNData", dependencies: ["LiteCNNTensor", "LiteCNNIO", "CImageCodecs", "CImageDecode"]),
        // MARK: Training (level 4): optimizers, schedules, losses, the loop, checkpoints
        .target(name: "LiteCNNTraining", dependencies: ["LiteCNNLayers", "LiteCNNModels", "LiteCNNIO", "LiteCNNData", "LiteCNNRuntime"]),
        .target(name: "LiteCNNCompression", dependencies: ["LiteCNNTensor", "LiteCNNGraph", "LiteCNNLayers", "LiteCNNModels",
                                                           "LiteCNNIO", "LiteCNNONNX", "LiteCNNRuntime", "LiteCNNData",
                                                           "LiteCNNTraining"]),
        // MARK: Pluggable compression operators (level 8): operator banks built in the cloud, chosen on the device
        .target(name: "LiteCNNOperators", dependencies: ["LiteCNNTensor", "LiteCNNGraph", "LiteCNNLayers", "LiteCNNRuntime",
                                                         "LiteCNNData", "LiteCNNTraining", "LiteCNNCompression"]),
        // MARK: Umbrella
        .target(name: "LiteCNN", dependencies: ["LiteCNNTensor", "LiteCNNGraph", "LiteCNNLayers", "LiteCNNModels", "LiteCNNIO",
                                                "LiteCNNONNX", "LiteCNNRuntime", "LiteCNNData", "LiteCNNTraining",
                                                "LiteCNNCompression", "LiteCNNOperators"]),
        // MARK: CLI
        .executableTarget(
            name: "LiteCNNCLI",
            dependencies: ["LiteCNN", .product(name: "ArgumentParser", package: "swift-argument-parser")]
        ),
        // MARK: Tests
        .target(name: "_TestSupport", dependencies: ["LiteCNN"], path: "Sources/_TestSupport"),
        .testTarget(name: "LiteCNNTensorTests", dependencies: ["LiteCNNTensor", "_TestSupport"]),
        .testTarget(name: "LiteCNNLayersTests", dependencies: ["LiteCNNLayers", "_TestSupport"], exclude: ["Fixtures"]),
        .testTarget(name: "LiteCNNModelsTests", dependencies: ["LiteCNNModels", "_TestSupport"], exclude: ["Fixtures"]),
        .testTarget(name: "LiteCNNIOTests", dependencies: ["LiteCNNIO", "_TestSupport"]),
        .testTarget(name: "LiteCNNONNXTests", dependencies: ["LiteCNN", "_TestSupport"], exclude: ["Fixtures"]),
        .testTarget(name: "LiteCNNRuntimeTests", dependencies: ["LiteCNN", "_TestSupport"]),
        .testTarget(name: "LiteCNNDataTests", dependencies: ["LiteCNNData", "_TestSupport"]),
        .testTarget(name: "LiteCNNTrainingTests", dependencies: ["LiteCNNTraining", "_TestSupport"], exclude: ["Fixtures"]),
        .testTarget(name: "LiteCNNCompressionTests", dependencies: ["LiteCNN", "_TestSupport"]),
        .testTarget(name: "LiteCNNOperatorsTests", dependencies: ["LiteCNN", "_TestSupport"]),
    ]
)
