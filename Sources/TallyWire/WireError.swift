/// Why a frame was rejected. The raw value is the code sent in ERROR frames; `label` names the
/// reason in logs and metrics.
public enum WireError: UInt16, Error, Sendable, CaseIterable {
    case badMagic = 1
    case unsupportedVersion = 2
    case unknownFrameType = 3
    case frameTooLarge = 4
    case truncated = 5
    case trailingBytes = 6
    case invalidUTF8 = 7
    case invalidFlags = 8
    case emptyFrame = 9
    case invalidEvent = 10
    case missingEventType = 11
    case overloaded = 12
    case unauthorized = 13

    public var label: String {
        switch self {
        case .badMagic: "bad_magic"
        case .unsupportedVersion: "unsupported_version"
        case .unknownFrameType: "unknown_frame_type"
        case .frameTooLarge: "frame_too_large"
        case .truncated: "truncated"
        case .trailingBytes: "trailing_bytes"
        case .invalidUTF8: "invalid_utf8"
        case .invalidFlags: "invalid_flags"
        case .emptyFrame: "empty_frame"
        case .invalidEvent: "invalid_event"
        case .missingEventType: "missing_event_type"
        case .overloaded: "overloaded"
        case .unauthorized: "unauthorized"
        }
    }

    /// Whether the bytes after a frame with this error can still be trusted: only when the frame
    /// header was sound, so its length told where the next frame starts.
    public var headerWasSound: Bool {
        switch self {
        case .badMagic, .unsupportedVersion, .frameTooLarge: false
        default: true
        }
    }
}

/// A rejected frame with a human-readable detail (field problems for ``WireError/invalidEvent``).
public struct FrameRejection: Error, Sendable, Equatable {
    public var reason: WireError
    public var detail: String
    public init(_ reason: WireError, _ detail: String = "") {
        self.reason = reason
        self.detail = detail.isEmpty ? reason.label : detail
    }
}
