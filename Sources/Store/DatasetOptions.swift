/// How a dataset is laid out on disk: contiguous (the default) or chunked, optionally gzipped
/// and checksummed.
///
/// SUBSTRATE.md measured gzip on float weights at ~40 MB/s for an 8–15 % saving, so adapters
/// stay uncompressed by default. When `gzipLevel` is set the byte-shuffle filter runs before
/// deflate (it groups the bytes of each float by significance, which is what makes floats
/// compressible at all). `checksum` adds HDF5's Fletcher-32 filter: a chunk whose bytes were
/// altered on disk then fails to read instead of returning wrong numbers. Filters need chunks;
/// without an explicit `chunkShape` the store picks chunks of at most ~1 MiB by halving the
/// largest dimension. Scalars and datasets with a zero-length dimension are always stored
/// contiguously (HDF5 cannot chunk them); their options are ignored.
public struct DatasetOptions: Equatable, Sendable {
    /// Chunk dimensions (same rank as the dataset, each ≥ 1 and ≤ the dataset's dimension).
    public var chunkShape: [Int]?
    /// Deflate level 0…9, or nil for no compression.
    public var gzipLevel: Int?
    /// Fletcher-32 checksum per chunk.
    public var checksum: Bool

    public init(chunkShape: [Int]? = nil, gzipLevel: Int? = nil, checksum: Bool = false) {
        self.chunkShape = chunkShape
        self.gzipLevel = gzipLevel
        self.checksum = checksum
    }

    /// Contiguous, unfiltered storage: the fastest to write and read.
    public static let contiguous = DatasetOptions()

    /// Chunked, shuffled and deflated at `level` (1 fast … 9 small), optionally checksummed.
    public static func gzip(level: Int = 4, chunkShape: [Int]? = nil,
                            checksum: Bool = false) -> DatasetOptions {
        DatasetOptions(chunkShape: chunkShape, gzipLevel: level, checksum: checksum)
    }

    /// Whether the dataset needs chunked storage.
    var isChunked: Bool { chunkShape != nil || gzipLevel != nil || checksum }

    /// The chunk dimensions for `shape`, or a reason why the options do not fit it.
    func chunkDimensions(for shape: [Int], elementByteCount: Int) -> Result<[Int], ReasonError> {
        if let level = gzipLevel, !(0...9).contains(level) {
            return .failure(ReasonError("gzip level \(level) is outside 0...9"))
        }
        if let chunk = chunkShape {
            guard chunk.count == shape.count else {
                return .failure(ReasonError("chunk shape \(chunk) has rank \(chunk.count), "
                                            + "the dataset \(shape) has rank \(shape.count)"))
            }
            for (c, d) in zip(chunk, shape) where c < 1 || c > d {
                return .failure(ReasonError("chunk shape \(chunk) must lie within 1...\(d) "
                                            + "for dataset shape \(shape)"))
            }
            return .success(chunk)
        }
        let targetByteCount = 1 << 20
        var chunk = shape
        while chunk.reduce(elementByteCount, *) > targetByteCount {
            guard let largest = chunk.indices.max(by: { chunk[$0] < chunk[$1] }),
                  chunk[largest] > 1 else { break }
            chunk[largest] = (chunk[largest] + 1) / 2
        }
        return .success(chunk)
    }
}

/// A reason, used internally before the store knows which file to blame.
struct ReasonError: Error {
    let reason: String
    init(_ reason: String) { self.reason = reason }
}
