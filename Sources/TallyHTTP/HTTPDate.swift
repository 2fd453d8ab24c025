import TallyCore

/// HTTP `Date` header values (IMF-fixdate), made by hand: Foundation's formatters are slow, and
/// this is computed once per second per connection on the ingest path.
public enum HTTPDate {
    /// E.g. `Sun, 06 Nov 1994 08:49:37 GMT`.
    public static func format(seconds: Int64) -> String {
        let day = UTCDay(number: Int32((seconds >= 0 ? seconds : seconds - 86_399) / 86_400))
        let sod = Int(seconds - Int64(day.number) * 86_400)
        let (y, m, d) = day.civil
        // 1970-01-01 was a Thursday.
        let weekday = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"][Int(((Int64(day.number) % 7) + 7) % 7)]
        let month = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"][m - 1]
        return "\(weekday), \(zeroPadded(d, 2)) \(month) \(y) \(zeroPadded(sod / 3600, 2)):\(zeroPadded(sod / 60 % 60, 2)):\(zeroPadded(sod % 60, 2)) GMT"
    }
}
