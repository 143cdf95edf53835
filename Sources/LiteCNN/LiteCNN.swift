// The umbrella module: `import LiteCNN` brings in tensors and kernels, layers, the model zoo and file formats.
@_exported import LiteCNNTensor
@_exported import LiteCNNGraph
@_exported import LiteCNNLayers
@_exported import LiteCNNModels
@_exported import LiteCNNIO
@_exported import LiteCNNONNX
@_exported import LiteCNNRuntime
@_exported import LiteCNNData
@_exported import LiteCNNTraining
@_exported import LiteCNNCompression
@_exported import LiteCNNOperators
