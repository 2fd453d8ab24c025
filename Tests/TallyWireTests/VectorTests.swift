import Foundation
import NIOCore
import Testing
import TallyCore
@testable import TallyWire

/// The language-neutral vectors in proto/vectors, checked against the Swift codec.
struct Vectors {
    struct JEvent: Decodable {
        var event_type: String
        var path: String?
        var user_id: String?
        var timestamp: Int64?
        var referrer: String?
        var utm_source: String?
        var utm_medium: String?
        var utm_campaign: String?
        var client_address: String?
        var user_agent: String?
    }
    struct JFrame: Decodable {
        var type: String
        var sequence: UInt64?
        var ack_requested: Bool?
        var site_id: String?
        var events: [JEvent]?
        var code: UInt16?
        var message: String?
        var key: String?
        var key_id: String?
    }
    struct Valid: Decodable, CustomTestStringConvertible {
        var name: String
        var hex: String
        var frame: JFrame
        var encode: Bool?
        var testDescription: String { name }
    }
    struct Invalid: Decodable, CustomTestStringConvertible {
        var name: String
        var hex: String
        var error: String
        var testDescription: String { name }
    }

    static let directory = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("proto/vectors")

    static let valid: [Valid] = load("valid.json")
    static let invalid: [Invalid] = load("invalid.json")

    static func load<T: Decodable>(_ name: String) -> [T] {
        do {
            return try JSONDecoder().decode([T].self, from: Data(contentsOf: directory.appendingPathComponent(name)))
        } catch {
            fatalError("cannot read \(name): \(error)")
        }
    }

    static func bytes(_ hex: String) -> [UInt8] {
        var out: [UInt8] = []
        var it = hex.utf8.makeIterator()
        while let a = it.next(), let b = it.next() {
            out.append(UInt8(String(decoding: [a, b], as: UTF8.self), radix: 16)!)
        }
        return out
    }

    static func frame(_ j: JFrame) -> Frame {
        switch j.type {
        case "events":
            return .events(EventsFrame(sequence: j.sequence ?? 0, ackRequested: j.ack_requested ?? false, siteID: j.site_id ?? "",
                                       events: (j.events ?? []).map {
                                           WireEvent(eventType: $0.event_type, path: $0.path, userID: $0.user_id, timestamp: $0.timestamp,
                                                     referrer: $0.referrer, utmSource: $0.utm_source, utmMedium: $0.utm_medium,
                                                     utmCampaign: $0.utm_campaign, clientAddress: $0.client_address,
                                                     userAgent: $0.user_agent)
                                       }))
        case "ack": return .ack(sequence: j.sequence ?? 0)
        case "auth": return .auth(key: j.key ?? "")
        case "auth_ok": return .authOK(siteID: j.site_id ?? "", keyID: j.key_id ?? "")
        case "error": return .error(code: WireError(rawValue: j.code ?? 0) ?? .invalidEvent, message: j.message ?? "")
        default: fatalError("vector frame of unknown type \(j.type)")
        }
    }
}

@Suite struct VectorTests {
    @Test func vectorsArePresent() {
        #expect(Vectors.valid.count >= 10)
        #expect(Vectors.invalid.count >= 20)
        // Every reason the decoder can give has a vector (overloaded and unauthorized are the
        // server's decisions, never decoding results).
        let labels = Set(Vectors.invalid.map(\.error))
        for reason in WireError.allCases where reason != .overloaded && reason != .unauthorized {
            #expect(labels.contains(reason.label), "no vector for \(reason.label)")
        }
    }

    @Test(arguments: Vectors.valid)
    func decodesValid(_ v: Vectors.Valid) throws {
        var b = ByteBuffer(bytes: Vectors.bytes(v.hex))
        #expect(try FrameDecoder.decode(&b) == .frame(Vectors.frame(v.frame)))
        #expect(b.readableBytes == 0)
    }

    @Test(arguments: Vectors.valid.filter { $0.encode != false })
    func encodesValidByteForByte(_ v: Vectors.Valid) {
        var b = ByteBuffer()
        FrameEncoder.write(Vectors.frame(v.frame), into: &b)
        #expect(Array(b.readableBytesView) == Vectors.bytes(v.hex))
    }

    @Test(arguments: Vectors.invalid)
    func rejectsInvalid(_ v: Vectors.Invalid) {
        var b = ByteBuffer(bytes: Vectors.bytes(v.hex))
        do {
            let step = try FrameDecoder.decode(&b)
            #expect(v.error == "need_more_data" && step == .needMoreData, "decoded as \(step)")
        } catch {
            #expect(error.reason.label == v.error)
        }
    }
}
