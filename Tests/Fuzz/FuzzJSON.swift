import TallyCore
import TallyJSON

/// Feeds arbitrary bytes to the JSON body reader as `POST /event` and `POST /events` bodies,
/// with and without the fast path: it must never crash, and both must give the same answer.
func fuzzJSON(_ bytes: UnsafeRawBufferPointer) {
    func single(_ fast: Bool) -> Result<Event, EventJSONError> {
        Result { () throws(EventJSONError) in try EventJSON.single(bytes, receivedAt: 1, fastPath: fast) }
    }
    func batch(_ fast: Bool) -> Result<[Event], EventJSONError> {
        Result { () throws(EventJSONError) in try EventJSON.batch(bytes, receivedAt: 1, maxEvents: 50, fastPath: fast) }
    }
    precondition(single(true) == single(false), "fast path and strict reader disagree on a single event")
    precondition(batch(true) == batch(false), "fast path and strict reader disagree on a batch")
}
