import ArgumentParser

/// `litecnn`: the command-line entry point. Each subcommand lives in its own file.
@main
struct LiteCNNCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "litecnn",
        abstract: "Lightweight convolutional networks on the CPU: build, train, evaluate, export and run them.",
        discussion: """
        Models are built from LiteCNN's zoo (MobileNet, ShuffleNet, SqueezeNet, EfficientNet, …) with torchvision's \
        layer and parameter names. Activations are NHWC in memory; shapes are printed in PyTorch's [N, C, H, W] order. \
        Training runs on the CPU with hand-written backward passes; a run directory holds the configuration, \
        checkpoints, metrics and learning curves.

        Start here:
          litecnn demo                              # train a ResNet-18 on built-in data, evaluate it (minutes)

        Examples:
          litecnn zoo                               # every model: params, MACs, size
          litecnn summary mobilenet_v2 --width 0.5  # per-layer table
          litecnn train --model squeezenet1_1 --data shapes --epochs 5 --out runs/sq
          litecnn eval runs/sq                      # top-1, top-5, confusion matrix on the test split
          litecnn export runs/sq/model.safetensors --onnx sq.onnx --resolution 32
          litecnn compress runs/sq --prune 0.67 --bits 6 --huffman --finetune-epochs 2 --out sq.lcz
          litecnn operators build runs/r18 --out r18.lcb  # operators to swap in by budget on the device
          litecnn weights squeezenet1_1 --out sq.safetensors --seed 1
        """,
        subcommands: [DemoCommand.self, ZooCommand.self, SummaryCommand.self, WeightsCommand.self, DataCommand.self, TrainCommand.self,
                      EvalCommand.self, CompressCommand.self, OperatorsCommand.self, RunCommand.self, BenchCommand.self, ExportCommand.self]
    )
}
