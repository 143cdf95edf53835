import LiteCNNGraph

// Dropout and stochastic depth are the identity at inference: no node.

extension Dropout: GraphEmitting {
    public func emit(into builder: inout GraphBuilder, input: String, inputShape: [Int], prefix: String) throws -> String {
        input
    }
}

extension DropPath: GraphEmitting {
    public func emit(into builder: inout GraphBuilder, input: String, inputShape: [Int], prefix: String) throws -> String {
        input
    }
}
