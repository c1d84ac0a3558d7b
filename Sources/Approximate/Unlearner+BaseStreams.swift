import Kernels
import Models

extension Unlearner {
    /// Computes, once, the frozen base's residual stream entering the adapter's lowest layer for
    /// every distinct forget chunk (each chunk alone, one thread each), when they fit in
    /// `limitBytes`; from then on the adapter's passes over those chunks start there.
    ///
    /// Worth it when the adapter leaves the lower layers alone and chunks come back — an S3T
    /// stage trains a block of the top layers for several epochs, and the layers below it
    /// would otherwise run again on the same chunk every epoch. Backward never goes below the
    /// lowest adapted layer, so the gradients are those of the full pass (up to rounding: a
    /// chunk's stream no longer shares products with the rest of its batch). Returns whether
    /// the streams were cached.
    @discardableResult
    public func cacheBaseStreams(limitBytes: Int = 1 << 30) throws -> Bool {
        guard let lowest = adapter.lowestLayer, lowest > 0 else { return false }
        var seen = Set<[Int]>(), distinct: [[Int]] = []
        for chunk in forget where seen.insert(chunk).inserted { distinct.append(chunk) }
        let floats = distinct.reduce(0) { $0 + $1.count } * model.configuration.hiddenSize
        guard floats * MemoryLayout<Float>.size <= limitBytes else { return false }
        let streams = try Parallel.mapSingleThreaded(count: distinct.count, threads: max(1, min(threads, distinct.count))) { i in
            let chunk = distinct[i]
            return model.baseHidden(try model.embed(ids: chunk.map(Int32.init), batch: 1, tokens: chunk.count),
                                    layers: 0 ..< lowest, batch: 1, tokens: chunk.count, threads: 1)
        }
        baseStreams = Dictionary(uniqueKeysWithValues: zip(distinct, streams))
        streamLayer = lowest
        return true
    }

    /// The adapter's forward pass over batch `b` (made of `chunks`), logits at `rows`: from the
    /// cached streams when every chunk has one (padding rows left at zero: causality keeps them
    /// out of every real row), otherwise from the token embeddings.
    func adapterPass(_ b: ChunkBatch, _ chunks: [[Int]], rows: [Int], adapter: LlamaAdapter,
                     threads: Int) throws -> LlamaModel.ForwardPass {
        let cached = streamLayer > 0 ? chunks.compactMap { baseStreams[$0] } : []
        guard cached.count == chunks.count, !chunks.isEmpty else {
            return try model.forward(ids: b.ids, batch: b.batch, tokens: b.tokens, logitRows: rows, adapter: adapter,
                                     threads: threads)
        }
        let cs = model.configuration.hiddenSize
        let x = Tensor(shape: [b.batch * b.tokens, cs])
        for (i, stream) in cached.enumerated() {
            (x.data + i * b.tokens * cs).update(from: stream.pointer, count: stream.count)
        }
        return model.forward(hidden: x, fromLayer: streamLayer, batch: b.batch, tokens: b.tokens, logitRows: rows,
                                 adapter: adapter, threads: threads)
    }
}
