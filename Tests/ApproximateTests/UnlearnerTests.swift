import Foundation
import Testing
import Kernels
import Models
import Store
@testable import Approximate

/// The unlearning objectives on a tiny random Llama, against independently computed terms.
@Suite struct UnlearnerTests {
    static func tiny() throws -> LlamaModel {
        let c = try LlamaConfiguration(vocabularySize: 17, hiddenSize: 16, intermediateSize: 24, layerCount: 2,
                                       headCount: 4, kvHeadCount: 2, ropeBase: 100000, rmsEpsilon: 1e-5,
                                       maxPositions: 16)
        return try LlamaModel(weights: LlamaWeights(randomWith: c, seed: 5, scale: 0.3), precision: .fp32)
    }
    static let forget = [[1, 4, 9, 16, 3, 3], [2, 7, 1], [5, 5, 6, 8, 10]]
    static let retain = [[11, 12, 13, 14], [0, 2, 4, 6, 8, 10, 12], [3, 1, 4]]

    func unlearner(_ model: LlamaModel, _ method: UnlearningMethod, steps: Int = 1, batchSize: Int = 2,
                   threads: Int = 1) throws -> Unlearner {
        let configuration = try UnlearningConfiguration(learningRate: 1e-2, steps: steps, batchSize: batchSize, seed: 9,
                                                        adapter: try LlamaAdapterConfiguration(rank: 2, alpha: 4))
        return try Unlearner(model: model, objective: .unlearn(method), configuration: configuration,
                             forget: Self.forget, companion: Self.retain, padID: 0, threads: threads)
    }

    /// The loss and every adapter gradient of step 0, with lora_B moved off zero so that each
    /// term (the KL too) has a gradient in A and B.
    func stepZero(_ model: LlamaModel, _ method: UnlearningMethod, threads: Int) throws -> (Float, [[Float]]) {
        let u = try unlearner(model, method, batchSize: 3, threads: threads)
        for p in u.adapter.parameters where p.name.hasSuffix("lora_B") {
            for j in 0 ..< p.value.count { p.value[j] = 0.05 * Float((j * 7 + p.name.count) % 11) - 0.25 }
        }
        u.adapter.zeroGradients()
        let s = try u.accumulate(step: 0)
        return (s.loss, u.adapter.parameters.map(\.gradient.values))
    }

    @Test func threadGroupsGiveTheWholeBatchGradient() throws {
        // Batch 3 on two threads: groups of 1 and 2 chunks of different lengths, so each
        // group's term must be weighted by its share of the rows.
        let model = try Self.tiny()
        for method in [UnlearningMethod.gradientAscent, .randomLabel, .ascentDescentInDistribution, .ascentKLGeneral,
                       .npo, .simNPODescentInDistribution] {
            let (loss1, grads1) = try stepZero(model, method, threads: 1)
            let (loss2, grads2) = try stepZero(model, method, threads: 2)
            #expect(abs(loss1 - loss2) <= 1e-5 * max(1, abs(loss1)), "\(method): loss \(loss1) vs \(loss2)")
            var largest: Float = 0, worst: Float = 0
            for (g1, g2) in zip(grads1, grads2) {
                for (a, b) in zip(g1, g2) { largest = max(largest, abs(a)); worst = max(worst, abs(a - b)) }
            }
            #expect(largest > 1e-3, "\(method): the gradient is not trivially zero")
            #expect(worst <= 1e-5 * largest, "\(method): gradients differ by \(worst) (largest \(largest))")
            let (again, gradsAgain) = try stepZero(model, method, threads: 2)
            #expect(again == loss2 && gradsAgain == grads2, "\(method): same thread count, same bits")
        }
    }

    /// An adapter on the top layer only: cached base streams give the loss and gradients of
    /// the full passes (to rounding), for fine-tuning and for a KL companion term, on one and two
    /// threads; an adapter that reaches layer 0 has nothing to cache.
    @Test func cachedBaseStreamsGiveTheFullPassesGradients() throws {
        let model = try Self.tiny()
        let top = try LlamaAdapterConfiguration(rank: 2, alpha: 4, layers: [1])
        for (objective, threads) in [(Unlearner.Objective.fineTune, 1), (.fineTune, 2), (.unlearn(.ascentKLInDistribution), 2)] {
            func step(cached: Bool) throws -> (Float, [[Float]]) {
                let configuration = try UnlearningConfiguration(learningRate: 1e-2, steps: 1, batchSize: 3, seed: 9, adapter: top)
                let u = try Unlearner(model: model, objective: objective, configuration: configuration,
                                      forget: Self.forget + Self.forget, companion: Self.retain, padID: 0, threads: threads)
                for p in u.adapter.parameters where p.name.hasSuffix("lora_B") {
                    for j in 0 ..< p.value.count { p.value[j] = 0.05 * Float((j * 7 + p.name.count) % 11) - 0.25 }
                }
                if cached {
                    #expect(try u.cacheBaseStreams())
                    #expect(u.streamLayer == 1 && u.baseStreams.count == Self.forget.count)
                }
                u.adapter.zeroGradients()
                let s = try u.accumulate(step: 1)
                return (s.loss, u.adapter.parameters.map(\.gradient.values))
            }
            let (full, fullGradients) = try step(cached: false)
            let (fast, fastGradients) = try step(cached: true)
            #expect(abs(full - fast) <= 1e-5 * max(1, abs(full)), "\(objective): loss \(full) vs \(fast)")
            let largest = fullGradients.joined().map(abs).max() ?? 0
            let worst = zip(fullGradients.joined(), fastGradients.joined()).map { abs($0 - $1) }.max() ?? 0
            #expect(largest > 1e-3 && worst <= 1e-5 * largest, "\(objective): gradients differ by \(worst) of \(largest)")
        }
        let everyLayer = try Unlearner(model: model, objective: .fineTune,
                                       configuration: try UnlearningConfiguration(learningRate: 1e-2, steps: 1,
                                           adapter: try LlamaAdapterConfiguration(rank: 2, alpha: 4)),
                                       forget: Self.forget, padID: 0)
        #expect(try !everyLayer.cacheBaseStreams())
        #expect(try !Unlearner(model: model, objective: .fineTune,
                               configuration: try UnlearningConfiguration(learningRate: 1e-2, steps: 1, adapter: top),
                               forget: Self.forget, padID: 0).cacheBaseStreams(limitBytes: 100))
    }

    /// Token-weighted mean NLL of chunks, from the independent scoring path.
    func meanNLL(_ model: LlamaModel, _ chunks: [[Int]]) throws -> Double {
        let lp = try model.scores(of: chunks, batchSize: 1).flatMap(\.logProbabilities)
        return -lp.reduce(0.0) { $0 + Double($1) } / Double(lp.count)
    }

    @Test func ascentAndDescentTermsMatchIndependentScores() throws {
        let model = try Self.tiny()
        let f = try meanNLL(model, Array(Self.forget[0 ..< 2])), r = try meanNLL(model, Array(Self.retain[0 ..< 2]))
        let ga = try unlearner(model, .gradientAscent).accumulate(step: 0)
        #expect(abs(Double(ga.loss) + f) < 1e-4 && ga.companionTerm == 0)
        for method in [UnlearningMethod.ascentDescentInDistribution, .ascentDescentGeneral] {
            let s = try unlearner(model, method).accumulate(step: 0)
            #expect(abs(Double(s.loss) - (-f + r)) < 1e-4, "\(method)")
        }
        // At θ = θ0 (B = 0) the KL term is exactly zero; the loss is the ascent term alone.
        for method in [UnlearningMethod.ascentKLInDistribution, .ascentKLGeneral] {
            let s = try unlearner(model, method).accumulate(step: 0)
            #expect(s.companionTerm == 0 && abs(Double(s.loss) + f) < 1e-4, "\(method)")
        }
        // Step 1 pairs forget batch 1 (chunks 2, 0) with retain batch 1 (chunks 2, 0): 1:1.
        let f1 = try meanNLL(model, [Self.forget[2], Self.forget[0]]), r1 = try meanNLL(model, [Self.retain[2], Self.retain[0]])
        let s1 = try unlearner(model, .ascentDescentInDistribution).accumulate(step: 1)
        #expect(abs(Double(s1.loss) - (-f1 + r1)) < 1e-4)
    }

    /// (2/β)·softplus(x), the per-chunk preference loss.
    static func preference(_ β: Double, _ x: Double) -> Double { 2 / β * log(1 + exp(x)) }

    @Test func preferenceTermsMatchIndependentScores() throws {
        let model = try Self.tiny()
        let scores = try model.scores(of: Array(Self.forget[0 ..< 2]), batchSize: 1)
        // NPO at θ = θ0 (B = 0): each chunk's log-ratio is 0, the loss (2/β)·ln 2 with β = 0.1.
        let npo = try unlearner(model, .npo).accumulate(step: 0)
        #expect(abs(Double(npo.loss) - 20 * log(2.0)) < 1e-3 && npo.companionTerm == 0, "\(npo.loss)")
        // SimNPO (β = 2.5, γ = 0): mean over the chunks of (2/β)·softplus(β·mean log p).
        let simnpo = try unlearner(model, .simNPO).accumulate(step: 0)
        let expected = scores.map { Self.preference(2.5, 2.5 * -$0.meanNLL) }.reduce(0, +) / 2
        #expect(abs(Double(simnpo.loss) - expected) < 1e-4, "\(simnpo.loss) vs \(expected)")
        // The -gd forms add the retain NLL of the paired batch.
        let r = try meanNLL(model, Array(Self.retain[0 ..< 2]))
        let npoGD = try unlearner(model, .npoDescentInDistribution).accumulate(step: 0)
        #expect(abs(Double(npoGD.loss) - (20 * log(2.0) + r)) < 1e-3 && abs(Double(npoGD.companionTerm) - r) < 1e-4)
        let simGD = try unlearner(model, .simNPODescentInDistribution).accumulate(step: 0)
        #expect(abs(Double(simGD.loss) - (expected + r)) < 1e-4)
    }

    /// β and γ reach the loss: with γ = 1 and β = 1 the SimNPO value moves accordingly.
    @Test func betaAndGammaAreUsed() throws {
        let model = try Self.tiny()
        let configuration = try UnlearningConfiguration(learningRate: 1e-2, steps: 1, batchSize: 2, seed: 9,
                                                        adapter: try LlamaAdapterConfiguration(rank: 2, alpha: 4),
                                                        beta: 1, gamma: 1)
        let u = try Unlearner(model: model, objective: .unlearn(.simNPO), configuration: configuration,
                              forget: Self.forget, padID: 0)
        let scores = try model.scores(of: Array(Self.forget[0 ..< 2]), batchSize: 1)
        let expected = scores.map { Self.preference(1, -$0.meanNLL + 1) }.reduce(0, +) / 2
        #expect(abs(Double(try u.accumulate(step: 0).loss) - expected) < 1e-4)
        #expect(throws: ApproximateError.self) {
            try UnlearningConfiguration(learningRate: 1e-2, steps: 1, adapter: try LlamaAdapterConfiguration(rank: 2),
                                        beta: 0)
        }
    }

    /// μ_t and σ_t of the scoring path against the next-token distribution of a direct forward pass.
    @Test func tokenScoresCarryTheDistributionsMeanAndDeviation() throws {
        let model = try Self.tiny()
        let c = Self.forget[0]
        let s = try model.scores(of: [c]).first!
        let pass = try model.forward(ids: c.map(Int32.init), batch: 1, tokens: c.count, logitRows: Array(0 ..< c.count))
        for t in 0 ..< c.count - 1 {
            let z = pass.logits.values[t * 17 ..< (t + 1) * 17].map(Double.init)
            let lse = log(z.map { exp($0) }.reduce(0, +))
            let logP = z.map { $0 - lse }
            let μ = logP.map { exp($0) * $0 }.reduce(0, +)
            let σ = logP.map { exp($0) * ($0 - μ) * ($0 - μ) }.reduce(0, +).squareRoot()
            #expect(abs(Double(s.expectedLogProbabilities[t]) - μ) < 1e-4 && abs(Double(s.logProbabilityDeviations[t]) - σ) < 1e-4)
            #expect(abs(Double(s.logProbabilities[t]) - logP[c[t + 1]]) < 1e-4)
        }
    }

    @Test func forgetEvaluationRunsEveryAttack() throws {
        let model = try Self.tiny()
        let text: ([Int]) throws -> String = { $0.map(String.init).joined(separator: " ") }
        let reference = try ReferenceScores(model: model, forget: Self.forget, unseen: Self.retain, padID: 0)
        let e = try ForgetEvaluation(model: model, adapter: nil, forget: Self.forget, unseen: Self.retain, padID: 0,
                                     text: text, reference: reference)
        #expect(e.attacks.map(\.attack) == MembershipInference.Attack.allCases)
        // LOSS is Min-K% at K = 100; the reference attack against the model itself is chance.
        #expect(e.auc(.loss) == e.membership[4].rocAUC && e.auc(.reference) == 0.5)
        #expect(e.largestGap(to: e) == 0)
        let bare = try ForgetEvaluation(model: model, adapter: nil, forget: Self.forget, unseen: Self.retain, padID: 0)
        #expect(bare.attacks.map(\.attack) == [.loss, .minK, .minKPlusPlus])
        // Gaps are signed: the evaluation with more attacks against one with fewer compares the shared ones.
        #expect(e.gaps(to: bare).map(\.attack) == [.loss, .minK, .minKPlusPlus])
        #expect(throws: ApproximateError.self) {
            try ForgetEvaluation(model: model, adapter: nil, forget: Self.forget, unseen: Self.retain, padID: 0,
                                 reference: ReferenceScores(forget: [], unseen: []))
        }
    }

    @Test func adversarialLabelsAreAlignedToTheNextToken() throws {
        let model = try Self.tiny()
        let u = try unlearner(model, .adversarial)
        for (c, labels) in zip(Self.forget, u.replacedLabels) {
            #expect(labels.count == c.count - 1)
            let pass = try model.forward(ids: c.map(Int32.init), batch: 1, tokens: c.count, logitRows: Array(0 ..< c.count))
            for t in 0 ..< c.count - 1 {
                // Row t predicts token t + 1: the label is θ0's best token other than x[t + 1].
                let z = Array(pass.logits.values[t * 17 ..< (t + 1) * 17])
                let best = (0 ..< 17).filter { $0 != c[t + 1] }.max { z[$0] < z[$1] }!
                #expect(Int(labels[t]) == best && Int(labels[t]) != c[t + 1])
            }
        }
        let random = try unlearner(model, .randomLabel)
        #expect(random.replacedLabels.map(\.count) == Self.forget.map { $0.count - 1 })
        #expect(random.replacedLabels.joined().allSatisfy { $0 >= 0 && $0 < 17 })
    }

    @Test func everyMethodRaisesForgetLoss() throws {
        let model = try Self.tiny()
        let before = try meanNLL(model, Self.forget)
        for method in UnlearningMethod.allCases {
            let u = try unlearner(model, method, steps: 6)
            let adapter = try u.run()
            let lp = try model.scores(of: Self.forget, adapter: adapter, batchSize: 1).flatMap(\.logProbabilities)
            let after = -lp.reduce(0.0) { $0 + Double($1) } / Double(lp.count)
            #expect(after > before, "\(method): forget NLL \(before) → \(after)")
        }
    }

    @Test func methodsNeedingCompanionDataRejectItsAbsence() throws {
        let model = try Self.tiny()
        let configuration = try UnlearningConfiguration(learningRate: 1e-3, steps: 1,
                                                        adapter: try LlamaAdapterConfiguration(rank: 2))
        #expect(throws: ApproximateError.missingData(method: "ga-kl-gen", needs: "general data")) {
            try Unlearner(model: model, objective: .unlearn(.ascentKLGeneral), configuration: configuration,
                          forget: Self.forget)
        }
    }

    @Test func adapterFileKeepsRSLoRA() throws {
        let model = try Self.tiny()
        let configuration = try UnlearningConfiguration(
            learningRate: 1e-3, steps: 1, adapter: try LlamaAdapterConfiguration(rank: 4, alpha: 4, useRSLoRA: true))
        let u = try Unlearner(model: model, objective: .unlearn(.gradientAscent), configuration: configuration,
                              forget: Self.forget)
        let adapter = try u.run()
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("lethe-adapter-\(UUID()).h5")
        defer { try? FileManager.default.removeItem(at: url) }
        try AdapterFile.write(adapter, to: url, method: "ga", configuration: configuration, threadCount: 1,
                              baseModelSHA256: "abc", dataSets: [:])
        let (read, _, _) = try AdapterFile.read(url, weights: model.weights)
        #expect(read.configuration.lora?.useRSLoRA == true && read.configuration.scale == 2)
    }

    @Test func adapterFileRoundTrip() throws {
        let model = try Self.tiny()
        let u = try unlearner(model, .gradientAscent, steps: 2)
        let adapter = try u.run()
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("lethe-adapter-\(UUID()).h5")
        defer { try? FileManager.default.removeItem(at: url) }
        try AdapterFile.write(adapter, to: url, method: "ga", configuration: u.configuration, threadCount: 3,
                              baseModelSHA256: "abc",
                              dataSets: ["forget": TextCorpus(chunks: Self.forget, path: "f.jsonl", sha256: "f00")])
        let (read, method, precision) = try AdapterFile.read(url, weights: model.weights)
        let file = try HDF5File.open(url, mode: .readOnly)
        #expect(try file.intAttribute(named: "thread_count") == 3 && file.intAttribute(named: "format_version") == 2)
        try file.close()
        #expect(method == "ga" && precision == .fp32 && read.parameters.count == adapter.parameters.count)
        #expect(read.configuration == adapter.configuration)
        for (a, b) in zip(read.parameters, adapter.parameters) { #expect(a.name == b.name && a.value.values == b.value.values) }

        // An edited rank (sealed again) is refused before rank × width weights are allocated.
        let original = try Data(contentsOf: url)
        let edited = try HDF5File.open(url, mode: .readWrite)
        try edited.setAttribute(.int(1 << 40), named: "r")
        try edited.close()
        try HDF5Seal.seal(fileAt: url)
        #expect(performing: { try AdapterFile.read(url, weights: model.weights) }, throws: { error in
            guard case ApproximateError.invalidAdapter(url.path, let reason) = error else { return false }
            return reason.hasPrefix("r = 1099511627776")
        })
        try original.write(to: url)
        // So is an alpha the adapter configuration refuses (NaN): the message names the file.
        let alpha = try HDF5File.open(url, mode: .readWrite)
        try alpha.setAttribute(.double(.nan), named: "lora_alpha")
        try alpha.close()
        try HDF5Seal.seal(fileAt: url)
        #expect(performing: { try AdapterFile.read(url, weights: model.weights) }, throws: { error in
            guard case ApproximateError.invalidAdapter(url.path, let reason) = error else { return false }
            return reason.hasPrefix("lora_alpha = nan") && "\(error)".hasPrefix(url.path)
        })
        try original.write(to: url)
        // use_rslora is a flag: 0 or 1, as FORMAT.md says.
        let flag = try HDF5File.open(url, mode: .readWrite)
        try flag.setAttribute(.int(2), named: "use_rslora")
        try flag.close()
        try HDF5Seal.seal(fileAt: url)
        #expect(performing: { try AdapterFile.read(url, weights: model.weights) }, throws: { error in
            guard case ApproximateError.invalidAdapter(url.path, let reason) = error else { return false }
            return reason == "use_rslora = 2: must be 0 or 1"
        })
        try original.write(to: url)

        // The file is sealed: one changed byte is the damaged-adapter error naming it.
        var bytes = try Data(contentsOf: url)
        #expect(bytes.starts(with: Data("lethe-sha256 ".utf8)))
        bytes[bytes.count / 2] ^= 1
        try bytes.write(to: url)
        #expect(performing: { try AdapterFile.read(url, weights: model.weights) }, throws: { error in
            guard case ApproximateError.damagedAdapter(let path, let reason) = error else { return false }
            return path == url.path && reason.contains("damaged or edited") && "\(error)".contains("lethe unlearn")
        })
    }

    @Test func anAdapterFileIsReadOnlyForItsBaseModelAndLayers() throws {
        let model = try Self.tiny()
        let u = try unlearner(model, .gradientAscent)
        let adapter = try u.run()
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("lethe-adapter-\(UUID()).h5")
        defer { try? FileManager.default.removeItem(at: url) }
        try AdapterFile.write(adapter, to: url, method: "ga", configuration: u.configuration, threadCount: 1,
                              baseModelSHA256: "abc", dataSets: [:], precision: .bf16)
        let same = try AdapterFile.read(url, weights: model.weights, base: .init(path: "m.gguf", sha256: "abc"))
        #expect(same.precision == .bf16 && same.adapter.parameters.count == adapter.parameters.count)
        #expect(throws: ApproximateError.adapterMismatch(path: url.path, reason: "it was trained from a base model with "
                                                         + "SHA-256 abc, but other.gguf has SHA-256 def")) {
            try AdapterFile.read(url, weights: model.weights, base: .init(path: "other.gguf", sha256: "def"))
        }
        // Layers the model lacks (an edited file, sealed again) are refused, not ignored.
        let edited = try HDF5File.open(url, mode: .readWrite)
        try edited.setAttribute(.ints([1, 99]), named: "layers")
        try edited.close()
        try HDF5Seal.seal(fileAt: url)
        #expect(throws: ApproximateError.adapterMismatch(path: url.path, reason: "its layers list names layer 99, but the "
                                                         + "model has 2 layers (0…1)")) {
            try AdapterFile.read(url, weights: model.weights)
        }
    }
}

/// Bounds and divergence: the configuration refuses values outside its documented limits,
/// the adapter's rank fits the model, and a NaN loss stops the run before a step is applied.
@Suite struct UnlearnerBoundsTests {
    @Test func theConfigurationRefusesValuesOutsideItsLimitsNamingTheOption() throws {
        let adapter = try LlamaAdapterConfiguration(rank: 2, alpha: 4)
        #expect(throws: ApproximateError.invalidValue(field: "--lr", value: "2.0", reason: "must be in 1e-08…1")) {
            try UnlearningConfiguration(learningRate: 2, steps: 1, adapter: adapter)
        }
        #expect(throws: ApproximateError.invalidValue(field: "--lr", value: "nan", reason: "must be in 1e-08…1")) {
            try UnlearningConfiguration(learningRate: .nan, steps: 1, adapter: adapter)
        }
        #expect(throws: ApproximateError.invalidValue(field: "--steps", value: "100001", reason: "must be in 1…100000")) {
            try UnlearningConfiguration(learningRate: 1e-3, steps: 100_001, adapter: adapter)
        }
        #expect(throws: ApproximateError.invalidValue(field: "--rank", value: "300", reason: "must be in 1…256")) {
            try UnlearningConfiguration(learningRate: 1e-3, steps: 1, adapter: try LlamaAdapterConfiguration(rank: 300))
        }
        _ = try UnlearningConfiguration(learningRate: 1, steps: 100_000, batchSize: 1_024, adapter: adapter)
    }

    @Test func aRankWiderThanTheNarrowestProjectionIsRefused() throws {
        let model = try UnlearnerTests.tiny()   // key/value projections are 2 heads × 4 = 8 wide
        let configuration = try UnlearningConfiguration(learningRate: 1e-3, steps: 1,
                                                        adapter: try LlamaAdapterConfiguration(rank: 9))
        #expect(throws: ApproximateError.invalidValue(field: "--rank", value: "9", reason:
                    "the model's narrowest adapted projection is 8 wide; give at most 8")) {
            try Unlearner(model: model, objective: .unlearn(.gradientAscent), configuration: configuration,
                          forget: UnlearnerTests.forget)
        }
    }

    @Test func aNonFiniteLossStopsTheRunAtItsStepBeforeAnyUpdate() throws {
        let model = try UnlearnerTests.tiny()
        // One NaN in the embedding of a token the second forget chunk holds: step 1 reads chunks
        // 0 and 1 (batch 2), so the first step's loss is NaN.
        model.weights.tokenEmbedding[7 * model.configuration.hiddenSize] = .nan
        let configuration = try UnlearningConfiguration(learningRate: 1e-3, steps: 3, batchSize: 2, seed: 9,
                                                        adapter: try LlamaAdapterConfiguration(rank: 2, alpha: 4))
        let unlearner = try Unlearner(model: model, objective: .unlearn(.gradientAscent), configuration: configuration,
                                      forget: UnlearnerTests.forget, padID: 0)
        let before = unlearner.adapter.parameters.map(\.value.values)
        var reported: [Int] = []
        #expect {
            try unlearner.run { reported.append($0.step) }
        } throws: { error in
            guard case ApproximateError.nonFiniteLoss(let step, let loss) = error else { return false }
            return step == 1 && loss.isNaN
        }
        #expect(reported.isEmpty, "no step was reported as done")
        #expect(unlearner.adapter.parameters.map(\.value.values) == before, "the adapter was not updated")
        // Before any update the rate is not the cause: the message points at the model or data.
        let message = "\(ApproximateError.nonFiniteLoss(step: 1, loss: .nan))"
        #expect(message.contains("unlearning step 1") && message.contains("nan") && message.contains("before any update")
                && !message.contains("Lower the learning rate"))
        let later = "\(ApproximateError.nonFiniteLoss(step: 5, loss: .infinity))"
        #expect(later.contains("unlearning step 5") && later.contains("--lr"))
    }
}
