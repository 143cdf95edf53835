import ArgumentParser

/// `litecnn`: the command-line entry point. Each subcommand lives in its own file.
@main
struct LiteCNNCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "litecnn",
        abstract: "Lightweight convolutional networks on the CPU: list, inspect and initialise the model zoo.",
        discussion: """
        Models are built from LiteCNN's zoo (MobileNet, ShuffleNet, SqueezeNet, EfficientNet, …) with torchvision's \
        layer and parameter names. Activations are NHWC in memory; shapes are printed in PyTorch's [N, C, H, W] order.

        Examples:
          litecnn zoo                               # every model: params, MACs, size
          litecnn summary mobilenet_v2 --width 0.5  # per-layer table
          litecnn weights squeezenet1_1 --out sq.safetensors --seed 1
          litecnn weights --inspect sq.safetensors  # tensors and metadata
        """,
        subcommands: [DemoCommand.self, ZooCommand.self, SummaryCommand.self, WeightsCommand.self, DataCommand.self, TrainCommand.self,
                      EvalCommand.self, RunCommand.self, BenchCommand.self, ExportCommand.self]
    )
}
