import Models
import Planning

/// Which fields of an example the model reads.
public enum TextField: String, Sendable, Codable, CaseIterable {
    /// `text` only (BBC: the headline).
    case text
    /// `text`, a space, then `lead` (BBC: headline and first paragraph); examples without a lead
    /// use their text alone.
    case textAndLead = "text+lead"

    /// The string the tokenizer sees for `example`.
    public func input(of example: Example) -> String {
        switch self {
        case .text: return example.text
        case .textAndLead:
            guard let lead = example.field("lead"), !lead.isEmpty else { return example.text }
            return example.text + " " + lead
        }
    }

    /// Tokenized, labelled examples; a label missing from `labels` is an error naming the example.
    public func trainingExamples(_ examples: [Example], labels: LabelVocabulary, model: LoRAClassifier) throws
        -> [TrainingExample]
    {
        try examples.map { e in
            guard let label = labels.index(of: e.label) else {
                throw TrainingError.unknownLabel(id: e.id, label: e.label)
            }
            return TrainingExample(ids: model.encode(input(of: e)), label: label)
        }
    }
}
