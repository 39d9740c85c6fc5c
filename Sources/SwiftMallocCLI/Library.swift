// Where the allocators are: swiftmalloc's library (beside the executable, in
// its install prefix, or --library) and the peers `compare` measures.

import Foundation

enum Library {
  static let fileName = "libswiftmalloc.so"

  /// The directory of the running executable (symlinks resolved).
  static var executableDirectory: String {
    let exe = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe"))
      ?? CommandLine.arguments[0]
    return (URL(fileURLWithPath: exe).resolvingSymlinksInPath().deletingLastPathComponent().path)
  }

  /// Where the library is looked for, in order: beside the executable
  /// (build/bin/../ is the build folder, bin/../lib the install prefix),
  /// then the SwiftPM build folders' view of the tree (.build/release/../../build).
  static var candidates: [String] {
    let dir = executableDirectory
    return [
      "\(dir)/\(fileName)",
      "\(dir)/../\(fileName)",
      "\(dir)/../lib/\(fileName)",
      "\(dir)/../lib/\(multiarch)/\(fileName)",
      "\(dir)/../lib64/\(fileName)",
      "\(dir)/../../build/\(fileName)",
      "\(dir)/../../../build/\(fileName)",
    ].map(normalize)
  }

  /// `path` with "." and ".." taken out, symlinks kept (libswiftmalloc.so
  /// stays libswiftmalloc.so, not the versioned file it points to).
  static func normalize(_ path: String) -> String {
    var parts: [Substring] = []
    let absolute = path.hasPrefix("/") ? path : FileManager.default.currentDirectoryPath + "/" + path
    for part in absolute.split(separator: "/") {
      if part == "." || part.isEmpty { continue }
      if part == ".." { _ = parts.popLast() } else { parts.append(part) }
    }
    return "/" + parts.joined(separator: "/")
  }

  /// The library to preload: `explicit` if given (it must exist), else the
  /// first candidate that exists. Throws a CLIError saying where it looked.
  static func find(explicit: String?) throws -> String {
    if let explicit {
      let path = normalize(explicit)
      guard FileManager.default.isReadableFile(atPath: path) else {
        throw CLIError("--library \(explicit): no such library")
      }
      return path
    }
    for candidate in candidates where FileManager.default.isReadableFile(atPath: candidate) {
      return candidate
    }
    throw CLIError("""
      cannot find \(fileName); looked in:
      \(candidates.map { "  " + $0 }.joined(separator: "\n"))
      build it with `make`, install it with `make install`, or name it with --library PATH
      """)
  }

  static var multiarch: String {
    #if arch(x86_64)
    return "x86_64-linux-gnu"
    #elseif arch(arm64)
    return "aarch64-linux-gnu"
    #else
    return "unknown-linux-gnu"
    #endif
  }
}

/// An allocator `compare` can measure.
struct Allocator {
  var name: String
  /// The library to preload; nil for glibc (no preload).
  var preload: String?
  /// Why it is not available (nil when it is).
  var missing: String?

  static let known = ["glibc", "jemalloc", "tcmalloc", "mimalloc", "swiftmalloc"]

  /// name, soname, Debian package
  static let peers: [(String, String, String)] = [
    ("jemalloc", "libjemalloc.so.2", "libjemalloc2"),
    ("tcmalloc", "libtcmalloc_minimal.so.4", "libtcmalloc-minimal4"),
    ("mimalloc", "libmimalloc.so.2", "libmimalloc2.0"),
  ]

  static func findPeer(_ soname: String) -> String? {
    for dir in ["/usr/lib/\(Library.multiarch)", "/lib/\(Library.multiarch)", "/usr/lib", "/usr/local/lib", "/usr/lib64"] {
      let path = "\(dir)/\(soname)"
      if FileManager.default.fileExists(atPath: path) { return path }
    }
    return nil
  }

  /// The allocators named (in that order); swiftmalloc's library comes from
  /// `library` (already located, or the reason it could not be).
  static func resolve(_ names: [String], library: Result<String, CLIError>) -> [Allocator] {
    names.map { name in
      switch name {
      case "glibc":
        return Allocator(name: name, preload: nil, missing: nil)
      case "swiftmalloc":
        switch library {
        case .success(let path): return Allocator(name: name, preload: path, missing: nil)
        case .failure(let error): return Allocator(name: name, preload: nil, missing: error.message)
        }
      default:
        let (_, soname, package) = peers.first { $0.0 == name }!
        if let path = findPeer(soname) { return Allocator(name: name, preload: path, missing: nil) }
        return Allocator(name: name, preload: nil,
                         missing: "\(soname) not installed (Debian: apt-get install \(package))")
      }
    }
  }
}
