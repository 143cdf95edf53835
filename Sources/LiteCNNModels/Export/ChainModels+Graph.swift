import LiteCNNGraph
import LiteCNNLayers

// Models whose forward pass is their children in order (`ChainLayer`) emit that chain.

extension ChainLayer {
    /// Emits `children` one after another under `prefix`.
    func emitChildren(into builder: inout GraphBuilder, input: String, inputShape: [Int], prefix: String) throws -> String {
        try emitChain(children, into: &builder, input: input, inputShape: inputShape, prefix: prefix).value
    }
}
