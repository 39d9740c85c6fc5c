// `swiftmalloc run`: the program on swiftmalloc (children inherit it), a
// statistics report from every process through SWIFTMALLOC_STATS=json and
// SWIFTMALLOC_STATS_FILE=<private folder>/stats-%p.json, one summary per
// process at the end, and the program's exit status.
//
// The reports are read generically (JSONSerialization), key by key; a
// report or key that is missing is said, never fatal. The keys read are
// listed in StatsReport.keys and in the README ("swiftmalloc run").

import ArgumentParser
import Foundation
#if canImport(Glibc)
import Glibc
#endif

struct RunCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "run",
    abstract: "Run a program on swiftmalloc and summarise each process's heap.",
    discussion: """
      The program runs with libswiftmalloc.so preloaded (its children inherit
      it). Each process writes a statistics report at exit into a private
      temporary folder; at the end one summary per process goes to standard
      error (or --output): peak in use, peak resident, calls, the five busiest
      size classes. The exit status is the program's (128 + N for signal N),
      127 when it cannot be started, 64 for bad arguments.
      """)

  @Flag(help: "Secure mode (SWIFTMALLOC_SECURE=1).")
  var secure = false

  @Option(help: ArgumentHelp("Summary format: text or json (the reports themselves).", valueName: "text|json"))
  var stats = "text"

  @Option(name: .customLong("set"), parsing: .singleValue,
          help: ArgumentHelp("Set an option: SWIFTMALLOC_NAME=VALUE (or NAME=VALUE). Repeatable.", valueName: "NAME=VALUE"))
  var settings: [String] = []

  @Flag(help: "Publish the live page (SWIFTMALLOC_LIVE=1) for `swiftmalloc top`.")
  var live = false

  @Option(help: ArgumentHelp("Write the summary to this file instead of standard error.", valueName: "file"))
  var output: String?

  @OptionGroup var libraryOptions: LibraryOptions

  @Argument(parsing: .captureForPassthrough, help: ArgumentHelp("-- PROGRAM ARGS...", valueName: "program"))
  var command: [String] = []

  var program: [String] { command.first == "--" ? Array(command.dropFirst()) : command }

  /// --set values as environment entries.
  func environmentSettings() throws -> [(String, String)] {
    try settings.map { setting in
      guard let eq = setting.firstIndex(of: "=") else {
        throw ValidationError("--set \(setting): expected NAME=VALUE")
      }
      var name = String(setting[..<eq]).uppercased()
      if !name.hasPrefix("SWIFTMALLOC_") { name = "SWIFTMALLOC_" + name }
      guard name.dropFirst("SWIFTMALLOC_".count).allSatisfy({ $0.isLetter || $0.isNumber || $0 == "_" }),
            name.count > "SWIFTMALLOC_".count else {
        throw ValidationError("--set \(setting): not an option name")
      }
      return (name, String(setting[setting.index(after: eq)...]))
    }
  }

  func validate() throws {
    if program.isEmpty { throw ValidationError("no program given: swiftmalloc run [options] -- PROGRAM ARGS...") }
    if stats != "text" && stats != "json" { throw ValidationError("--stats takes text or json, not '\(stats)'") }
    _ = try environmentSettings()
  }

  func run() throws {
    let library: String
    do { library = try Library.find(explicit: libraryOptions.library) } catch let e as CLIError { exitWith(e) }
    var template = Array((NSTemporaryDirectory() + "/swiftmalloc-run.XXXXXX").utf8CString)
    guard let dirPointer = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) else {
      exitWith(CLIError("cannot make a temporary folder: \(String(cString: strerror(errno)))"))
    }
    let folder = String(cString: dirPointer)  // mode 0700: private to this user
    defer {
      try? FileManager.default.removeItem(atPath: folder)
      Spawner.removeScratch()
    }
    var environment = ProcessInfo.processInfo.environment
    environment["SWIFTMALLOC_STATS"] = "json"
    environment["SWIFTMALLOC_STATS_FILE"] = "\(folder)/stats-%p.json"
    if secure { environment["SWIFTMALLOC_SECURE"] = "1" }
    if live { environment["SWIFTMALLOC_LIVE"] = "1" }
    for (name, value) in try environmentSettings() { environment[name] = value }
    let existing = environment.removeValue(forKey: "LD_PRELOAD")
    let preload = [library, existing].compactMap { $0 }.filter { !$0.isEmpty }.joined(separator: ":")
    let spec = ChildSpec(argv: program, environment: environment, preload: preload)
    let startMs = LivePage.coarseNowMs()
    Spawner.forwardSignals()
    let measurement: Measurement
    do {
      measurement = try Spawner.run(spec, sampleInterval: nil, timeout: nil) { report in
        guard live, let report else { return }
        Thread.detachNewThread {
          for _ in 0..<100 {
            if let pid = Spawner.programPid(report: report) {
              warn("live page on: watch it with `swiftmalloc top \(pid)`")
              return
            }
            usleep(10_000)
          }
        }
      }
    } catch let e as CLIError {
      try? FileManager.default.removeItem(atPath: folder)
      Spawner.removeScratch()
      exitWith(e)
    }
    if live { _ = LivePage.removeStale(sinceMs: startMs) }
    let reports = StatsReport.collect(folder: folder)
    let text: String
    if stats == "json" {
      text = StatsReport.jsonArray(reports)
    } else {
      text = StatsReport.summary(reports, program: program, measurement: measurement)
    }
    if let output {
      do { try text.write(toFile: output, atomically: false, encoding: .utf8) } catch {
        warn("cannot write \(output): \(error.localizedDescription)")
      }
    } else {
      FileHandle.standardError.write(Data(text.utf8))
    }
    throw ExitCode(measurement.status)
  }
}

/// One process's statistics report (SWIFTMALLOC_STATS=json), read key by key.
struct StatsReport {
  /// The keys `run` reads (the README lists them; the library writes them
  /// in exports/stats.c). Each is a path of object keys; alternatives in order.
  static let keys: [String: [[String]]] = [
    "version": [["swiftmalloc"], ["version"]],
    "program": [["program"]],
    "pid": [["pid"]],
    "peak_in_use": [["bytes", "in_use", "peak"], ["peak_in_use"]],
    "peak_resident": [["bytes", "process_resident", "peak"], ["bytes", "resident", "peak"], ["peak_resident"]],
    "calls": [["calls"]],
    "classes": [["classes"]],
  ]

  var file: String
  var object: [String: Any]?
  var error: String?

  func value(_ name: String) -> Any? {
    guard let object, let paths = Self.keys[name] else { return nil }
    for path in paths {
      var node: Any? = object
      for key in path { node = (node as? [String: Any])?[key] }
      if let node, !(node is NSNull) { return node }
    }
    return nil
  }

  func number(_ name: String) -> UInt64? { (value(name) as? NSNumber)?.uint64Value }

  static func collect(folder: String) -> [StatsReport] {
    let files = ((try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? []).filter { $0.hasSuffix(".json") }
    return files.sorted().map { name in
      let path = "\(folder)/\(name)"
      guard let data = FileManager.default.contents(atPath: path) else {
        return StatsReport(file: name, object: nil, error: "unreadable")
      }
      do {
        guard let object = try JSONSerialization.jsonObject(with: data) as? [String: Any] else {
          return StatsReport(file: name, object: nil, error: "not a JSON object")
        }
        return StatsReport(file: name, object: object, error: nil)
      } catch {
        return StatsReport(file: name, object: nil, error: "not JSON (\(data.count) bytes)")
      }
    }.sorted { ($0.number("pid") ?? 0) < ($1.number("pid") ?? 0) }
  }

  static func jsonArray(_ reports: [StatsReport]) -> String {
    let array: [Any] = reports.map { $0.object ?? ["file": $0.file, "error": $0.error ?? "?"] }
    let data = (try? JSONSerialization.data(withJSONObject: array, options: [.prettyPrinted, .sortedKeys])) ?? Data()
    return String(decoding: data, as: UTF8.self) + "\n"
  }

  static let missing = "no statistics report (library too old?)"

  static func summary(_ reports: [StatsReport], program: [String], measurement: Measurement) -> String {
    var s = ""
    let pids = Set(reports.compactMap { $0.number("pid") })
    if reports.isEmpty {
      s += "swiftmalloc run: \(program[0]): \(missing)\n"
    } else if let pid = measurement.pid, !pids.contains(UInt64(pid)) {
      s += "swiftmalloc run: pid \(pid) (\(program[0])): \(missing)\n"
    }
    for report in reports { s += report.summary() }
    let status = measurement.signal.map { "signal \($0)" } ?? "exit status \(measurement.status)"
    s += String(format: "swiftmalloc run: %@ %@, %.2f s, %d process%@ reported\n", program[0] as NSString, status as NSString,
                measurement.wallSeconds, reports.count, reports.count == 1 ? "" : "es")
    return s
  }

  func summary() -> String {
    guard error == nil else { return "swiftmalloc run: \(file): \(error!)\n" }
    func show(_ name: String, _ f: (Any) -> String?) -> String { value(name).flatMap(f) ?? "(no \(name) key)" }
    let program = show("program") { $0 as? String }
    let pid = show("pid") { ($0 as? NSNumber)?.stringValue }
    let version = show("version") { $0 as? String }
    var s = "swiftmalloc run: pid \(pid) \(program) (swiftmalloc \(version))\n"
    s += "  peak in use     " + (number("peak_in_use").map(formatBytes) ?? "(no peak_in_use key)") + "\n"
    s += "  peak resident   " + (number("peak_resident").map(formatBytes) ?? "(no peak_resident key)") + "\n"
    if let calls = value("calls") as? [String: Any] {
      let items = calls.keys.sorted().compactMap { k in (calls[k] as? NSNumber).map { "\(k) \($0)" } }
      s += "  calls           " + items.joined(separator: ", ") + "\n"
    } else {
      s += "  calls           (no calls key)\n"
    }
    guard let classes = value("classes") as? [[String: Any]] else {
      return s + "  size classes    (no classes key)\n"
    }
    func num(_ c: [String: Any], _ k: String) -> UInt64 { (c[k] as? NSNumber)?.uint64Value ?? 0 }
    // busiest: allocations if the report counts them, else bytes in use
    // (blocks in use x size), then spans
    let byAllocations = classes.contains { $0["allocations"] != nil }
    let ranked = classes.filter { num($0, "spans") > 0 || num($0, "allocations") > 0 }.sorted {
      let a = byAllocations ? num($0, "allocations") : num($0, "in_use") * num($0, "size")
      let b = byAllocations ? num($1, "allocations") : num($1, "in_use") * num($1, "size")
      return a != b ? a > b : num($0, "spans") > num($1, "spans")
    }.prefix(5)
    if ranked.isEmpty { return s + "  size classes    none used\n" }
    s += "  busiest size classes (\(byAllocations ? "by allocations" : "by bytes in use at exit")):\n"
    s += "        size" + (byAllocations ? "  allocations" : "") + "    in use    cached   central     spans\n"
    for c in ranked {
      s += "  " + "\(num(c, "size")) B".leftPad(10)
      if byAllocations { s += "\(num(c, "allocations"))".leftPad(13) }
      for k in ["in_use", "cached", "central", "spans"] { s += (c[k] == nil ? "-" : "\(num(c, k))").leftPad(10) }
      s += "\n"
    }
    return s
  }
}
