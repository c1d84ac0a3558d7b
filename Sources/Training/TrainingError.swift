/// Every error the Training module throws; messages end with what to do.
public enum TrainingError: Error, CustomStringConvertible, Equatable {
    case invalidConfiguration(field: String, value: String, reason: String)
    /// A layer asked to train carries no adapters.
    case layerWithoutAdapters(layer: Int)
    case noExamples
    case labelOutOfRange(example: Int, label: Int, classCount: Int)
    /// An example's label is not in the model's label vocabulary.
    case unknownLabel(id: String, label: String)

    public var description: String {
        switch self {
        case let .invalidConfiguration(field, value, reason):
            return "invalid \(field) = \(value): \(reason). Choose a value in range."
        case let .layerWithoutAdapters(layer):
            return "layer \(layer) is marked trainable but carries no adapters. Install adapters on it first or drop it from the trainable layers."
        case .noExamples:
            return "no training examples. Check the data file and the slices selected."
        case let .unknownLabel(id, label):
            return "example \(id) has label \"\(label)\", which the model's label vocabulary does not know. Train on data with the same labels."
        case let .labelOutOfRange(example, label, classCount):
            return "example \(example) has label \(label), outside 0..<\(classCount). Build the model with the dataset's label vocabulary."
        }
    }
}
