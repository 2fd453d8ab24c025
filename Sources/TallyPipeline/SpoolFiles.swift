import Glibc

/// A spool directory read from outside a running pipeline, for backups: the batch files
/// waiting for the loader are listed, checked and copied as they are. A running collector's
/// loader may remove a file at any moment (once its batch is committed), so a file that is
/// gone is reported as gone, never as an error.
public enum SpoolFiles {
    /// The batch files (`<batch id>.batch`) waiting in `directory`, by name.
    public static func pending(in directory: String) -> [String] {
        FileOps.list(directory, suffix: ".batch").sorted()
    }

    /// The batch id a file name carries.
    public static func batchID(ofFile name: String) -> String {
        String(name.dropLast(".batch".count))
    }

    /// Reads and verifies a whole batch file (header, checksums, zstd, every frame and event,
    /// as the loader does); its event count.
    public static func check(_ path: String) throws -> Int {
        try SpoolFormat.decode(FileOps.read(path)).events.count
    }

    /// Copies `name` from `source` into `destination` durably (written to a temporary name,
    /// fsynced, renamed, the directory fsynced): false when the file was gone from `source`.
    public static func copy(_ name: String, from source: String, to destination: String) throws -> Bool {
        let path = source + "/" + name
        let bytes: [UInt8]
        do {
            bytes = try FileOps.read(path)
        } catch {
            // Loaded and removed since it was listed.
            if access(path, F_OK) != 0 { return false }
            throw error
        }
        try FileOps.makeDirectory(destination)
        try FileOps.writeDurably(bytes, tmp: destination + "/." + name + ".tmp", final: destination + "/" + name, directory: destination)
        return true
    }
}
