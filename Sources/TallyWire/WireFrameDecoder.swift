import NIOCore

/// What a sender may send: events, or a write key for the events that follow (version 2).
public enum SenderFrame: Sendable, Equatable {
    case events(EventsFrame)
    case auth(key: String)
}

/// Frames a TCP byte stream into the frames a sender may send, for NIO's
/// `ByteToMessageHandler` (which buffers partial frames across reads and, on close, hands the
/// rest to `decodeLast`). A malformed frame throws its ``FrameRejection``; the handler behind
/// answers it with an ERROR frame and closes. Decoding is ``FrameDecoder``'s, shared with UDP.
public struct WireFrameDecoder: ByteToMessageDecoder {
    public typealias InboundOut = SenderFrame

    public init() {}

    public mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        switch try FrameDecoder.decode(&buffer) {
        case .needMoreData:
            // The header gives the frame's size: room for all of it at once, so the rest is read
            // into one buffer of that size rather than one that doubles (and copies) as it fills.
            if let length = buffer.getInteger(at: buffer.readerIndex + 4, as: UInt32.self) {
                buffer.reserveCapacity(minimumWritableBytes: Wire.headerSize + Int(length) - buffer.readableBytes)
            }
            return .needMoreData
        case .frame(.events(let frame)):
            context.fireChannelRead(wrapInboundOut(.events(frame)))
            return .continue
        case .frame(.auth(let key)):
            context.fireChannelRead(wrapInboundOut(.auth(key: key)))
            return .continue
        case .frame:
            throw FrameRejection(.unknownFrameType, "senders may only send EVENTS and AUTH frames")
        }
    }

    /// Whole frames received before the connection closed are delivered like any other: their
    /// bytes arrived, and a plain-TCP sender rightly considers them sent. A partial frame at
    /// the end is dropped (it was never whole).
    public mutating func decodeLast(context: ChannelHandlerContext, buffer: inout ByteBuffer, seenEOF: Bool) throws -> DecodingState {
        try decode(context: context, buffer: &buffer)
    }
}
