import Forgetting
import Foundation
import Planning
import HTTPTypes
import Hummingbird
import NIOCore
import Support

/// JSON answers: one object, keys sorted; errors as `{"error": "…"}`.
enum JSONResponse {
    static func object(_ object: [String: Any], status: HTTPResponse.Status = .ok, headers: HTTPFields = [:]) -> Response {
        let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes]))
            ?? Data(#"{"error":"the answer could not be encoded as JSON"}"#.utf8)
        return raw(Array(data), status: status, headers: headers)
    }

    /// A Codable answer, keys sorted like `object`'s. The inference answer takes this path:
    /// JSONEncoder writes it in a fraction of the time JSONSerialization spends casting `Any`.
    static func encoded<Body: Encodable>(_ body: Body, status: HTTPResponse.Status = .ok,
                                         headers: HTTPFields = [:]) -> Response {
        do { return raw(try encodedBytes(body), status: status, headers: headers) } catch {
            return raw(Array(#"{"error":"the answer could not be encoded as JSON"}"#.utf8), status: .internalServerError)
        }
    }

    static func encodedBytes<Body: Encodable>(_ body: Body) throws -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return Array(try encoder.encode(body))
    }

    static func raw(_ bytes: [UInt8], status: HTTPResponse.Status = .ok, headers: HTTPFields = [:],
                    contentType: String = "application/json") -> Response {
        var fields = headers
        fields[.contentType] = contentType
        return Response(status: status, headers: fields, body: .init(byteBuffer: ByteBuffer(bytes: bytes)))
    }

    static func text(_ text: String, contentType: String) -> Response {
        raw(Array(text.utf8), contentType: contentType)
    }

    static func error(_ message: String, status: HTTPResponse.Status) -> Response {
        object(["error": message], status: status)
    }
}

/// The body of an inference answer (Open Inference Protocol v2): the model, the generation that
/// answered, and two outputs, the labels and the probabilities [texts, classes] flat.
struct InferAnswer: Encodable {
    struct Generation: Encodable {
        let sequence: Int64
        let hash: String
        let snapshot: Int
    }

    struct Output: Encodable {
        enum Values: Encodable {
            case strings([String])
            case numbers([Double])

            func encode(to encoder: Encoder) throws {
                var container = encoder.singleValueContainer()
                switch self {
                case .strings(let values): try container.encode(values)
                case .numbers(let values): try container.encode(values)
                }
            }
        }

        let name: String
        let datatype: String
        let shape: [Int]
        let data: Values
    }

    let modelName: String
    let modelVersion: String
    let id: String?
    let generation: Generation
    let outputs: [Output]

    enum CodingKeys: String, CodingKey {
        case modelName = "model_name", modelVersion = "model_version", id, generation, outputs
    }
}

/// An Open Inference Protocol v2 inference request: one BYTES input named `text` holding one or
/// more strings (`data` flat, or nested one level as some clients send it).
struct InferRequest {
    var texts: [String]
    var id: String?

    static func parse(_ body: [UInt8]) throws -> InferRequest {
        guard !body.isEmpty else { throw BadRequest("the body is empty; send {\"inputs\": [{\"name\": \"text\", …}]}") }
        let json = try parseJSONBody(body)
        guard let object = json as? [String: Any] else { throw BadRequest("the body must be a JSON object") }
        try refuseRepeatedKeys(body)
        guard let inputs = object["inputs"] as? [[String: Any]] else {
            throw BadRequest("\"inputs\" must be an array of tensors")
        }
        let named = inputs.filter { $0["name"] as? String == "text" }
        guard let input = named.first else { throw BadRequest("no input named \"text\"") }
        guard named.count == 1 else { throw BadRequest("more than one input is named \"text\"; send one") }
        guard input["datatype"] as? String == "BYTES" else {
            throw BadRequest("input \"text\" needs \"datatype\": \"BYTES\"")
        }
        // KServe v2: the shape is an array of non-negative integers whose product is the count.
        guard let shapeValues = input["shape"] as? [Any], !shapeValues.isEmpty,
              let shape = Self.dimensions(shapeValues) else {
            throw BadRequest("input \"text\" needs \"shape\": an array of non-negative integers, e.g. [1]")
        }
        guard let data = input["data"] as? [Any] else { throw BadRequest("input \"text\" needs a \"data\" array") }
        var texts: [String] = []
        // Flat (row-major) or nested as the shape is: [n] or [n, m] rows of m strings.
        let nested = data.contains { $0 is [Any] }
        if nested, !(shape.count == 2 && data.count == shape[0]
                     && data.allSatisfy { ($0 as? [Any])?.count == shape[1] }) {
            throw BadRequest("input \"text\" nests its data unlike its shape \(shape): give a flat array of strings, or "
                             + "rows as the shape says")
        }
        for item in data {
            if let text = item as? String { texts.append(text) } else if let nested = item as? [Any] {
                for inner in nested {
                    guard let text = inner as? String else { throw BadRequest("input \"text\" holds a non-string value") }
                    texts.append(text)
                }
            } else {
                throw BadRequest("input \"text\" holds a non-string value")
            }
        }
        guard !texts.isEmpty else { throw BadRequest("input \"text\" holds no strings") }
        let elements = shape.reduce(Optional(1)) { product, d in
            product.flatMap { let (p, o) = $0.multipliedReportingOverflow(by: d); return o ? nil : p }
        }
        guard elements == texts.count else {
            throw BadRequest("input \"text\" has shape \(shape) but \(texts.count) strings")
        }
        if object["id"] != nil, !(object["id"] is String) { throw BadRequest("\"id\" must be a string") }
        // Requested outputs must be ones this model has (an unknown name is a client's mistake).
        if let outputs = object["outputs"] {
            guard let list = outputs as? [[String: Any]] else { throw BadRequest("\"outputs\" must be an array of objects") }
            for output in list where !["label", "probabilities"].contains(output["name"] as? String ?? "") {
                throw BadRequest("unknown output \((output["name"] as? String).map { "\"\($0)\"" } ?? "without a name"); "
                                 + "this model answers \"label\" and \"probabilities\"")
            }
        }
        return InferRequest(texts: texts, id: object["id"] as? String)
    }

    /// Whole numbers ≥ 0 (JSON numbers with no fraction that fit an Int), or nil.
    static func dimensions(_ values: [Any]) -> [Int]? {
        var dims: [Int] = []
        for value in values {
            // (JSON's true and false also arrive as NSNumbers, of type "c".)
            guard let number = value as? NSNumber, String(cString: number.objCType) != "c",
                  let exact = Int(exactly: number.doubleValue), exact >= 0 else {
                return nil
            }
            dims.append(exact)
        }
        return dims
    }
}

/// The body of `POST /v1/forget`: `{"ids": […]}` and/or `{"groups": […]}` with an optional
/// `request_id`, or JSON Lines (`application/x-ndjson`) in the format of `lethe forget --log`.
enum ForgetBody {
    static func parse(_ body: [UInt8], ndjson: Bool) throws -> [ForgetRequest] {
        guard !body.isEmpty else { throw BadRequest("the body is empty; send {\"ids\": […]} or {\"groups\": […]}") }
        if ndjson {
            do {
                let requests = try RequestLog.parse(Data(body), source: "the request body")
                guard !requests.isEmpty else { throw BadRequest("the JSON Lines body holds no request") }
                return requests
            } catch let error as BadRequest { throw error } catch {
                throw BadRequest("\(error)")
            }
        }
        let json = try parseJSONBody(body, jsonLinesHint: true)
        guard let object = json as? [String: Any] else { throw BadRequest("the body must be a JSON object") }
        try refuseRepeatedKeys(body)
        let known: Set<String> = ["ids", "groups", "request_id"]
        if let unknown = object.keys.sorted().first(where: { !known.contains($0) }) {
            throw BadRequest("unknown field \"\(unknown)\"; use ids, groups and request_id")
        }
        func names(_ field: String) throws -> [String] {
            guard let value = object[field] else { return [] }
            guard let list = value as? [Any], list.allSatisfy({ $0 is String }) else {
                throw BadRequest("\"\(field)\" must be an array of strings")
            }
            let strings = list.compactMap { $0 as? String }
            if let problem = strings.lazy.compactMap({ ForgetRequest.problem(field: field, $0) }).first {
                throw BadRequest(problem)
            }
            // As the dataset reader and `lethe forget`: an empty id, and a group of nothing but
            // spaces, name nothing; an id of spaces or invisible characters is one a dataset may hold.
            let blank = { (name: String) in
                name.isEmpty || (field == "groups" && name.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty)
            }
            if strings.contains(where: blank) { throw BadRequest("\"\(field)\" holds an empty name") }
            return strings
        }
        let ids = try names("ids"), groups = try names("groups")
        if object["request_id"] != nil, !(object["request_id"] is String) {
            throw BadRequest("\"request_id\" must be a string")
        }
        let requestID = object["request_id"] as? String
        if let requestID, let problem = ForgetRequest.problem(field: "request_id", requestID) { throw BadRequest(problem) }
        if requestID == "" { throw BadRequest("\"request_id\" is empty: leave it out, or name the request") }
        guard !ids.isEmpty || !groups.isEmpty else { throw BadRequest("name at least one id or group to forget") }
        let targets = ids.map(ForgetRequest.Target.example) + groups.map(ForgetRequest.Target.group)
        if requestID != nil && targets.count > 1 {
            throw BadRequest("a request_id names one request: give one id or one group with it")
        }
        return targets.map { ForgetRequest(target: $0, requestID: requestID) }
    }
}

/// The JSON document of a request body, or a refusal that says what is wrong with it: bytes
/// that are not UTF-8, where the parser stopped, or (with `jsonLinesHint`) that a body of one
/// JSON object per line is a deletion log sent without its content type.
func parseJSONBody(_ body: [UInt8], jsonLinesHint: Bool = false) throws -> Any {
    do { return try JSONSerialization.jsonObject(with: Data(body), options: .fragmentsAllowed) } catch {
        guard let text = String(validating: body, as: UTF8.self) else {
            throw BadRequest("the body is not UTF-8 text, which JSON must be")
        }
        let lines = text.split(whereSeparator: \.isNewline).filter { !$0.allSatisfy(\.isWhitespace) }
        if jsonLinesHint, lines.count > 1, lines.allSatisfy({ $0.drop(while: \.isWhitespace).first == "{" }) {
            throw BadRequest("the body is not one JSON document but lines of them: send a JSON Lines deletion log with "
                             + "Content-Type: application/x-ndjson")
        }
        let detail = (error as NSError).userInfo[NSDebugDescriptionErrorKey] as? String
        throw BadRequest("the body is not valid JSON" + (detail.map { " (\($0))" } ?? ""))
    }
}

/// A body whose object repeats a key is refused: JSON parsers keep one of the two values, so the
/// other (ids to forget, texts to answer) would be dropped without a word. So is a comma before a
/// closing bracket, which JSON does not allow and Foundation's parser accepts.
func refuseRepeatedKeys(_ body: [UInt8]) throws {
    switch LenientJSON.firstProblem(inDocument: body) {
    case let .repeatedKey(key)?:
        throw BadRequest("the key \"\(key)\" appears twice in one object; give it once (a list holds several values)")
    case let problem?: throw BadRequest("the body has \(problem.text)")
    case nil: break
    }
}
