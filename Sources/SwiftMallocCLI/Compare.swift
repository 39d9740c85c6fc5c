// `swiftmalloc compare`: the program under each installed allocator,
// alternating (A B C, A B C, ...), N runs each; medians with min-max and
// the ratio to glibc; outputs checked to be the same; an SVG chart.

import ArgumentParser
import Foundation
#if canImport(Glibc)
import Glibc
#endif

struct CompareCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "compare",
    abstract: "Time and measure a program under each installed allocator.",
    discussion: """
      Runs the program N times under each allocator, alternating, and prints the
      median wall time, CPU time and peak RSS of its whole process tree (min-max
      in brackets) and the ratio to glibc. Every run's standard output and exit
      status must be the same under every allocator: where they differ, it says
      where, and the command exits 1. Allocators that are not installed are
      listed as skipped, with the Debian package that provides them.
      """)

  @Option(help: "Runs per allocator.")
  var runs = 5

  @Option(help: ArgumentHelp("Comma-separated allocators, in this order.", valueName: "list"))
  var allocators = Allocator.known.joined(separator: ",")

  @Option(help: ArgumentHelp("Write an SVG bar chart of time and peak RSS here.", valueName: "file.svg"))
  var chart: String?

  @Option(help: ArgumentHelp("Write every run's numbers as JSON here.", valueName: "file.json"))
  var json: String?

  @Option(help: ArgumentHelp("Seconds before a run is killed.", valueName: "s"))
  var timeout: Double = 600

  @OptionGroup var libraryOptions: LibraryOptions

  @Argument(parsing: .captureForPassthrough, help: ArgumentHelp("-- PROGRAM ARGS...", valueName: "program"))
  var command: [String] = []

  var program: [String] { command.first == "--" ? Array(command.dropFirst()) : command }
  var names: [String] { allocators.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) } }

  func validate() throws {
    if program.isEmpty { throw ValidationError("no program given: swiftmalloc compare [options] -- PROGRAM ARGS...") }
    if runs < 1 { throw ValidationError("--runs must be at least 1") }
    if timeout <= 0 { throw ValidationError("--timeout must be positive") }
    for name in names where !Allocator.known.contains(name) {
      throw ValidationError("unknown allocator '\(name)' (known: \(Allocator.known.joined(separator: ", ")))")
    }
    if names.isEmpty { throw ValidationError("--allocators names none") }
  }

  func run() throws {
    let library: Result<String, CLIError>
    do { library = .success(try Library.find(explicit: libraryOptions.library)) } catch let e as CLIError {
      if libraryOptions.library != nil { exitWith(e) }
      library = .failure(CLIError("libswiftmalloc.so not found (build it with make, or pass --library PATH)"))
    }
    let all = Allocator.resolve(names, library: library)
    let present = all.filter { $0.missing == nil }
    if present.isEmpty { exitWith(CLIError("none of the allocators asked for is installed")) }
    let comparison: Comparison
    Spawner.killTreeOnInterrupt()
    do {
      comparison = try Comparison.measure(program: program, allocators: present, runs: runs, timeout: timeout)
    } catch let e as CLIError {
      Spawner.removeScratch()
      exitWith(e)
    }
    Spawner.removeScratch()
    print(comparison.table(skipped: all.filter { $0.missing != nil }), terminator: "")
    let differences = comparison.differences()
    if differences.isEmpty {
      print("output: the same under every allocator (\(comparison.referenceDescription))")
    } else {
      print("output differs:")
      for line in differences { print("  " + line) }
    }
    if let chart {
      do {
        try Chart.svg(comparison).write(toFile: chart, atomically: true, encoding: .utf8)
        print("chart: \(chart)")
      } catch { exitWith(CLIError("cannot write \(chart): \(error.localizedDescription)")) }
    }
    if let json {
      do {
        try comparison.jsonData().write(to: URL(fileURLWithPath: json))
      } catch { exitWith(CLIError("cannot write \(json): \(error.localizedDescription)")) }
    }
    if !differences.isEmpty { throw ExitCode(1) }
  }
}

/// One allocator's runs.
struct AllocatorRuns {
  var allocator: Allocator
  var runs: [Measurement] = []
  /// stdout and status of each run, and the start of stderr (for messages).
  var outputs: [(stdout: Data, status: Int32, stderr: String)] = []
}

struct Comparison {
  var program: [String]
  var results: [AllocatorRuns]
  var runs: Int
  var date = Date()

  static func measure(program: [String], allocators: [Allocator], runs: Int, timeout: Double) throws -> Comparison {
    var results = allocators.map { AllocatorRuns(allocator: $0) }
    var environment = ProcessInfo.processInfo.environment
    environment["LD_PRELOAD"] = nil
    let total = runs * allocators.count
    let tty = isatty(2) != 0
    var done = 0
    for run in 1...runs {
      for i in results.indices {
        done += 1
        if tty {
          FileHandle.standardError.write(Data(
            "\r\u{1b}[Kcompare: run \(done)/\(total): \(results[i].allocator.name) (\(run) of \(runs))".utf8))
        }
        let out = "\(Spawner.scratch)/stdout", err = "\(Spawner.scratch)/stderr"
        var spec = ChildSpec(argv: program, environment: environment, preload: results[i].allocator.preload)
        spec.stdin = .null
        spec.stdout = .file(out)
        spec.stderr = .file(err)
        spec.newProcessGroup = true
        let m = try Spawner.run(spec, sampleInterval: 0.01, timeout: timeout)
        let stdout = (try? Data(contentsOf: URL(fileURLWithPath: out))) ?? Data()
        let stderrText = String(decoding: ((try? Data(contentsOf: URL(fileURLWithPath: err))) ?? Data()).prefix(4096),
                                as: UTF8.self)
        results[i].runs.append(m)
        results[i].outputs.append((stdout, m.status, stderrText))
      }
    }
    if tty { FileHandle.standardError.write(Data("\r\u{1b}[K".utf8)) }
    return Comparison(program: program, results: results, runs: runs)
  }

  struct Summary {
    var wall: (median: Double, min: Double, max: Double)
    var cpu: (median: Double, min: Double, max: Double)
    var rss: (median: Double, min: Double, max: Double)
  }

  static func stats(_ xs: [Double]) -> (median: Double, min: Double, max: Double) {
    let s = xs.sorted()
    let n = s.count
    let median = n % 2 == 1 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2
    return (median, s.first!, s.last!)
  }

  func summary(_ r: AllocatorRuns) -> Summary {
    Summary(wall: Self.stats(r.runs.map(\.wallSeconds)), cpu: Self.stats(r.runs.map(\.cpuSeconds)),
            rss: Self.stats(r.runs.map { Double($0.peakRSSBytes) / 1048576 }))
  }

  var glibc: AllocatorRuns? { results.first { $0.allocator.name == "glibc" } }

  func statusText(_ r: AllocatorRuns) -> String {
    let texts = r.runs.map { m -> String in
      if m.timedOut { return "timeout" }
      if let s = m.signal { return "signal \(s)" }
      if r.outputs.first(where: { $0.stderr.contains("cannot be preloaded") }) != nil { return "not preloaded" }
      return "exit \(m.status)"
    }
    let distinct = Array(Set(texts)).sorted()
    return distinct.joined(separator: "/")
  }

  func table(skipped: [Allocator]) -> String {
    let base = glibc.map(summary)
    var rows = [["allocator", "wall s (min-max)", "CPU s (min-max)", "peak RSS MiB (min-max)", "time/glibc",
                 "RSS/glibc", "status"]]
    func range(_ v: (median: Double, min: Double, max: Double), _ f: String) -> String {
      String(format: "\(f) (\(f)-\(f))", v.median, v.min, v.max)
    }
    for r in results {
      let s = summary(r)
      let timeRatio = base.map { String(format: "%.2fx", s.wall.median / max($0.wall.median, 1e-9)) } ?? "-"
      let rssRatio = base.map { String(format: "%.2fx", s.rss.median / max($0.rss.median, 1e-9)) } ?? "-"
      rows.append([r.allocator.name, range(s.wall, "%.3f"), range(s.cpu, "%.3f"), range(s.rss, "%.1f"), timeRatio,
                   rssRatio, statusText(r)])
    }
    var widths = [Int](repeating: 0, count: rows[0].count)
    for row in rows { for (i, cell) in row.enumerated() { widths[i] = max(widths[i], cell.count) } }
    var text = "\(program.joined(separator: " ")): \(runs) run\(runs == 1 ? "" : "s") per allocator, medians\n"
    for row in rows {
      let cells = row.enumerated().map { i, cell in
        i == 0 || i == row.count - 1 ? cell.padding(toLength: widths[i], withPad: " ", startingAt: 0)
          : String(repeating: " ", count: widths[i] - cell.count) + cell
      }
      text += cells.joined(separator: "  ").trimmingCharacters(in: .whitespaces) + "\n"
    }
    for a in skipped { text += "skipped: \(a.name): \(a.missing ?? "")\n" }
    return text
  }

  var reference: (name: String, stdout: Data, status: Int32)? {
    guard let first = results.first, let out = first.outputs.first else { return nil }
    return (first.allocator.name, out.stdout, out.status)
  }

  var referenceDescription: String {
    guard let ref = reference else { return "" }
    return "stdout \(ref.stdout.count) bytes, exit status \(ref.status)"
  }

  /// Where runs differ from the first run of the first allocator.
  func differences() -> [String] {
    guard let ref = reference else { return [] }
    var lines: [String] = []
    for r in results {
      for (k, out) in r.outputs.enumerated() {
        var what: [String] = []
        if out.status != ref.status { what.append("exit status \(out.status), \(ref.name)'s \(ref.status)") }
        if out.stdout != ref.stdout { what.append(Self.firstDifference(out.stdout, ref.stdout, name: ref.name)) }
        if what.isEmpty { continue }
        let run = r.runs.count > 1 ? " run \(k + 1)" : ""
        lines.append("\(r.allocator.name)\(run): " + what.joined(separator: "; "))
        if !out.stderr.isEmpty && out.status != ref.status {
          lines.append("    stderr: " + out.stderr.split(separator: "\n").prefix(3).joined(separator: " | "))
        }
      }
    }
    // the same allocator disagreeing with itself: the program is not deterministic
    for r in results where Set(r.outputs.map { $0.stdout }).count > 1 {
      lines.append("\(r.allocator.name)'s own runs differ too: the program's output is not deterministic")
    }
    return lines
  }

  static func firstDifference(_ a: Data, _ b: Data, name: String) -> String {
    let x = [UInt8](a), y = [UInt8](b)
    var i = 0
    while i < x.count && i < y.count && x[i] == y[i] { i += 1 }
    let line = x[..<i].filter { $0 == 10 }.count + 1
    func lineAt(_ bytes: [UInt8]) -> String {
      var start = min(i, bytes.count)
      while start > 0 && bytes[start - 1] != 10 { start -= 1 }
      var end = start
      while end < bytes.count && bytes[end] != 10 { end += 1 }
      let text = String(decoding: bytes[start..<end], as: UTF8.self)
      return text.count > 60 ? String(text.prefix(60)) + "..." : text
    }
    return "stdout differs from \(name)'s at line \(line): \"\(lineAt(x))\" vs \"\(lineAt(y))\" (\(x.count) and \(y.count) bytes)"
  }

  func jsonData() throws -> Data {
    var allocs: [[String: Any]] = []
    for r in results {
      let s = summary(r)
      let runs = try r.runs.map { try JSONSerialization.jsonObject(with: JSONEncoder().encode($0)) }
      allocs.append(["name": r.allocator.name, "preload": r.allocator.preload ?? NSNull(), "runs": runs,
                     "median": ["wall_s": s.wall.median, "cpu_s": s.cpu.median, "peak_rss_mib": s.rss.median]])
    }
    let doc: [String: Any] = ["program": program, "runs": runs, "allocators": allocs,
                              "same_output": differences().isEmpty]
    return try JSONSerialization.data(withJSONObject: doc, options: [.prettyPrinted, .sortedKeys])
  }
}

/// `swiftmalloc measure`: one run, measured as `compare` measures, as JSON
/// on stdout (the program's output goes where --stdout/--stderr say). Used
/// by `make bench` (bench/run.py) so that both measure the same way.
struct MeasureCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "measure", abstract: "Run a program once and print its measurement as JSON (for make bench).",
    shouldDisplay: false)

  @Option(help: ArgumentHelp("The library to preload (none: glibc).", valueName: "path"))
  var preload: String?
  @Option(help: ArgumentHelp("Seconds before the run is killed.", valueName: "s"))
  var timeout: Double = 600
  @Option(help: ArgumentHelp("File for the program's stdout.", valueName: "path"))
  var stdout: String?
  @Option(help: ArgumentHelp("File for the program's stderr.", valueName: "path"))
  var stderr: String?
  @Argument(parsing: .captureForPassthrough)
  var command: [String] = []

  var program: [String] { command.first == "--" ? Array(command.dropFirst()) : command }

  func validate() throws {
    if program.isEmpty { throw ValidationError("no program given: swiftmalloc measure [options] -- PROGRAM ARGS...") }
  }

  func run() throws {
    var environment = ProcessInfo.processInfo.environment
    environment["LD_PRELOAD"] = nil
    var spec = ChildSpec(argv: program, environment: environment, preload: preload)
    spec.stdin = .null
    spec.stdout = stdout.map { .file($0) } ?? .null
    spec.stderr = stderr.map { .file($0) } ?? .null
    spec.newProcessGroup = true
    Spawner.killTreeOnInterrupt()
    defer { Spawner.removeScratch() }
    do {
      let m = try Spawner.run(spec, sampleInterval: 0.01, timeout: timeout)
      let encoder = JSONEncoder()
      encoder.outputFormatting = [.sortedKeys]
      print(String(decoding: try encoder.encode(m), as: UTF8.self))
    } catch let e as CLIError {
      print("{\"exec_error\": \(String(reflecting: e.message))}")
      throw ExitCode(e.status)
    }
  }
}
