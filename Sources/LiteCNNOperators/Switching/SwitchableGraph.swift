// A base network plus a bank of operators as one graph whose slots switch at run time, and single configurations.
import LiteCNNGraph
import LiteCNNRuntime
import LiteCNNTensor

/// Builds graphs from a base network and an `OperatorBank`.
///
/// - `switchable(base:bank:)`: the base graph (parameter sharing: its nodes and weights appear once) plus, for every
///   slot with operators in the bank, each operator's nodes and weights (parameter separation: initializers named
///   `bank/<entry>/…`) and an `ai.litecnn` `Select` that picks the unit (alternative 0) or one operator. The runtime
///   compiles and packs every alternative once and runs only the selected ones (`InferenceEngine.select`).
/// - `configured(_:base:bank:)`: one configuration as an ordinary ONNX graph (units replaced, unused weights
///   dropped), for export or for running without the bank.
public enum SwitchableGraph {
    /// One group of alternatives of a switchable graph: the slot it serves and the bank entries of alternatives 1….
    public struct Group: Sendable, Equatable {
        public var slot: Int
        public var entries: [Int]
    }

    /// The switchable graph and its groups (group g is the `Select` with `group = g`).
    public static func switchable(base: Graph, bank: OperatorBank) throws -> (graph: Graph, groups: [Group]) {
        var graph = base
        var groups: [Group] = []
        for slot in bank.slots {
            let entries = bank.entries(forSlot: slot.index)
            guard !entries.isEmpty else { continue }
            let g = groups.count
            groups.append(Group(slot: slot.index, entries: entries))
            let positions = try unitPositions(slot, in: graph)
            for (k, i) in positions.enumerated() {
                graph.nodes[i].attributes[alternativeAttribute] = .ints([g, 0])
                if k == positions.count - 1 { graph.nodes[i].outputs[0] = alternativeValue(slot, 0) }
            }
            var inserted: [Node] = []
            for (j, e) in entries.enumerated() {
                let op = bank.entries[e].op
                let (nodes, initializers) = op.nodes(input: slot.input, output: alternativeValue(slot, j + 1),
                                                     prefix: entryPrefix(e))
                for var n in nodes {
                    n.attributes[alternativeAttribute] = .ints([g, j + 1])
                    inserted.append(n)
                }
                graph.initializers.merge(initializers) { _, new in new }
            }
            inserted.append(Node(name: "select/\(slot.name)", opType: "Select", domain: alternativesDomain,
                                 inputs: (0...entries.count).map { alternativeValue(slot, $0) }, outputs: [slot.output],
                                 attributes: ["group": .int(g)]))
            graph.nodes.insert(contentsOf: inserted, at: positions.last! + 1)
        }
        graph.metadata["litecnn.switchable"] = "\(groups.count) groups"
        return (graph, groups)
    }

    /// `base` with every slot whose configuration names an entry served by that operator; weights only the replaced
    /// units read are dropped. Throws when an entry index is out of range or belongs to another slot.
    public static func configured(_ configuration: OperatorConfiguration, base: Graph, bank: OperatorBank) throws -> Graph {
        guard configuration.choices.count == bank.slots.count else {
            throw OperatorConfigurationError("the configuration has \(configuration.choices.count) choices, the bank \(bank.slots.count) slots")
        }
        var graph = base
        var dropped: Set<String> = []
        for (slotIndex, choice) in configuration.choices.enumerated() {
            guard let e = choice else { continue }
            let slot = bank.slots[slotIndex]
            try checkEntry(e, slot: slotIndex, bank: bank)
            let positions = try unitPositions(slot, in: graph)
            for i in positions { dropped.formUnion(graph.nodes[i].inputs.dropFirst()) }
            let (nodes, initializers) = bank.entries[e].op.nodes(input: slot.input, output: slot.output, prefix: entryPrefix(e))
            for i in positions.reversed() { graph.nodes.remove(at: i) }
            graph.nodes.insert(contentsOf: nodes, at: positions[0])
            graph.initializers.merge(initializers) { _, new in new }
        }
        let read = Set(graph.nodes.flatMap(\.inputs))
        for name in dropped where !read.contains(name) { graph.initializers[name] = nil }
        return graph
    }

    /// The selection of a switchable graph's groups that runs `configuration`.
    public static func selection(for configuration: OperatorConfiguration, groups: [Group], bank: OperatorBank) throws -> [Int] {
        guard configuration.choices.count == bank.slots.count else {
            throw OperatorConfigurationError("the configuration has \(configuration.choices.count) choices, the bank \(bank.slots.count) slots")
        }
        var selection = [Int](repeating: 0, count: groups.count)
        for (slotIndex, choice) in configuration.choices.enumerated() {
            guard let e = choice else { continue }
            try checkEntry(e, slot: slotIndex, bank: bank)
            guard let g = groups.firstIndex(where: { $0.slot == slotIndex }), let j = groups[g].entries.firstIndex(of: e) else {
                throw OperatorConfigurationError("entry \(e) is not an alternative of slot \(slotIndex)")
            }
            selection[g] = j + 1
        }
        return selection
    }

    static func checkEntry(_ e: Int, slot: Int, bank: OperatorBank) throws {
        guard bank.entries.indices.contains(e) else {
            throw OperatorConfigurationError("slot \(slot): entry \(e) is outside the bank's \(bank.entries.count) entries")
        }
        guard bank.entries[e].op.slot.index == slot else {
            throw OperatorConfigurationError("slot \(slot): entry \(e) is an operator for slot \(bank.entries[e].op.slot.index)")
        }
    }

    static func entryPrefix(_ e: Int) -> String { "bank/\(e)/" }
    static func alternativeValue(_ slot: OperatorSlot, _ j: Int) -> String { "\(slot.output)/alternative\(j)" }

    /// Indices of the unit's nodes in `graph`, in order; throws when the graph does not have them.
    static func unitPositions(_ slot: OperatorSlot, in graph: Graph) throws -> [Int] {
        var positions: [Int] = []
        for name in slot.nodes {
            guard let i = graph.nodes.firstIndex(where: { $0.name == name }) else {
                throw OperatorConfigurationError("slot \(slot.index) ('\(slot.name)'): the base has no node '\(name)'")
            }
            positions.append(i)
        }
        guard positions == positions.sorted(), graph.nodes[positions.last!].outputs.first == slot.output else {
            throw OperatorConfigurationError("slot \(slot.index) ('\(slot.name)'): the base's unit does not end in '\(slot.output)'")
        }
        return positions
    }
}

/// A configuration that does not fit its bank or base.
public struct OperatorConfigurationError: Error, CustomStringConvertible, Equatable {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}
