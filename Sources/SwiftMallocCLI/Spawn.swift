// Starting a program and measuring it: the one measuring code of `run`,
// `compare` and `make bench` (through `swiftmalloc measure`).
//
// The program is started by a small helper (tools/spawn/swiftmalloc-spawn.c,
// installed as libexec/swiftmalloc/spawn) that forks it, waits for it and
// reports its wait4 rusage: Linux folds the memory a process had before exec
// into its ru_maxrss, so a program started straight from this tool would
// count the tool's own peak. What is measured, for the whole process tree:
//   wall time   CLOCK_MONOTONIC around the program's fork and wait4 (helper);
//   CPU time    wait4's rusage, user + system: the program and every
//               descendant it waited for (a process that was never waited
//               for is not counted, as in time(1));
//   peak RSS    the larger of (a) the highest sum, over every process of the
//               tree, of its resident set (/proc/PID/statm), sampled every
//               10 ms through /proc/PID/task/*/children, and (b) wait4's
//               ru_maxrss (the largest single process, exact even for peaks
//               shorter than a sample). Pages shared between processes of
//               the tree count once per process. Neither this tool's memory
//               nor the helper's is part of it.
// Without the helper (a bare `swift build`), the program is started with
// posix_spawn and only (a) is measured. Neither Foundation's Process nor
// swift-subprocess is used: the measurement needs the wait4 of that very
// process, which they reap on their own.

import Foundation
#if canImport(Glibc)
import Glibc
#endif

enum Redirect {
  case inherit
  case null
  case file(String)
}

struct ChildSpec {
  var argv: [String]
  var environment: [String: String]
  /// The program's LD_PRELOAD (set in the program only, never in the helper).
  var preload: String?
  var stdin: Redirect = .inherit
  var stdout: Redirect = .inherit
  var stderr: Redirect = .inherit
  /// A process group of its own (compare: a timeout kills the whole tree).
  var newProcessGroup = false
}

struct Measurement: Codable {
  var wallSeconds: Double
  var userSeconds: Double
  var systemSeconds: Double
  var cpuSeconds: Double { userSeconds + systemSeconds }
  /// ru_maxrss: the largest single process of the tree (bytes).
  var maxRSSBytes: UInt64
  /// The highest sampled sum of the tree's resident sets, at least maxRSSBytes.
  var peakRSSBytes: UInt64
  var samples: Int
  /// The exit status, or 128 + the signal that ended it.
  var status: Int32
  var signal: Int32?
  var timedOut: Bool
  /// The program's process id (the helper's child), when known.
  var pid: Int32?

  enum CodingKeys: String, CodingKey {
    case wallSeconds = "wall_s", userSeconds = "user_s", systemSeconds = "sys_s", maxRSSBytes = "max_rss_bytes"
    case peakRSSBytes = "peak_rss_bytes", samples, status, signal, timedOut = "timed_out", pid
  }
}

nonisolated(unsafe) var forwardSignalsTo: pid_t = 0
nonisolated(unsafe) var forwardToGroup = false

enum Spawner {
  static func monotonic() -> Double {
    var t = timespec()
    clock_gettime(CLOCK_MONOTONIC, &t)
    return Double(t.tv_sec) + Double(t.tv_nsec) / 1e9
  }

  /// Starts the program; throws a CLIError with status 127 when it cannot be.
  static func spawn(_ spec: ChildSpec) throws -> pid_t {
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    func redirect(_ r: Redirect, _ fd: Int32, write: Bool) {
      switch r {
      case .inherit: break
      case .null: posix_spawn_file_actions_addopen(&actions, fd, "/dev/null", write ? O_WRONLY : O_RDONLY, 0)
      case .file(let path):
        posix_spawn_file_actions_addopen(&actions, fd, path, write ? (O_WRONLY | O_CREAT | O_TRUNC) : O_RDONLY, 0o600)
      }
    }
    redirect(spec.stdin, 0, write: false)
    redirect(spec.stdout, 1, write: true)
    redirect(spec.stderr, 2, write: true)

    var attr = posix_spawnattr_t()
    posix_spawnattr_init(&attr)
    defer { posix_spawnattr_destroy(&attr) }
    // every signal back to its default and unblocked: this tool ignores some while it waits
    var defaults = sigset_t()
    sigemptyset(&defaults)
    for s in 1..<32 where s != SIGKILL && s != SIGSTOP { sigaddset(&defaults, Int32(s)) }
    posix_spawnattr_setsigdefault(&attr, &defaults)
    var empty = sigset_t()
    sigemptyset(&empty)
    posix_spawnattr_setsigmask(&attr, &empty)
    var flags = Int32(POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK)
    if spec.newProcessGroup {
      posix_spawnattr_setpgroup(&attr, 0)
      flags |= Int32(POSIX_SPAWN_SETPGROUP)
    }
    posix_spawnattr_setflags(&attr, Int16(flags))

    let argv = spec.argv.map { strdup($0) } + [nil]
    let envp = spec.environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
    defer {
      argv.forEach { free($0) }
      envp.forEach { free($0) }
    }
    var pid: pid_t = 0
    let rc = posix_spawnp(&pid, spec.argv[0], &actions, &attr, argv, envp)
    if rc != 0 {
      throw CLIError("cannot run \(spec.argv[0]): \(String(cString: strerror(rc)))", status: 127)
    }
    return pid
  }

  /// The measuring helper: beside the executable's prefix (build/bin/../
  /// or PREFIX/bin/../) in libexec/swiftmalloc/spawn.
  static let helper: String? = {
    let path = Library.normalize(Library.executableDirectory + "/../libexec/swiftmalloc/spawn")
    return FileManager.default.isExecutableFile(atPath: path) ? path : nil
  }()

  static let scratch: String = {
    var template = Array((NSTemporaryDirectory() + "/swiftmalloc-measure.XXXXXX").utf8CString)
    let dir = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
    return dir.map { String(cString: $0) } ?? NSTemporaryDirectory()
  }()
  nonisolated(unsafe) static var reports = 0

  static func removeScratch() {
    try? FileManager.default.removeItem(atPath: scratch)
  }

  /// Runs the program to its end and measures it (see the top of this file).
  /// `sampleInterval` nil: no RSS sampling. A `timeout` kills the tree
  /// (SIGKILL to its process group when it has its own). Throws a CLIError
  /// with status 127 when the program cannot be started.
  static func run(_ spec: ChildSpec, sampleInterval: Double? = 0.01, timeout: Double? = nil,
                  started: ((_ reportPath: String?) -> Void)? = nil) throws -> Measurement {
    var launch = spec
    var report: String? = nil
    if let helper {
      reports += 1
      report = "\(scratch)/report-\(reports)"
      launch.argv = [helper, report!] + spec.argv
      if let preload = spec.preload { launch.environment["SWIFTMALLOC_SPAWN_PRELOAD"] = preload }
      launch.environment["LD_PRELOAD"] = nil
    } else if let preload = spec.preload {
      launch.environment["LD_PRELOAD"] = preload
    }
    let start = monotonic()
    let pid = try spawn(launch)
    started?(report)
    forwardSignalsTo = pid
    forwardToGroup = spec.newProcessGroup
    defer { forwardSignalsTo = 0 }
    let sampler = TreeSampler(root: pid, interval: sampleInterval ?? 0, timeout: timeout, group: spec.newProcessGroup,
                              excludeRoot: helper != nil)
    if sampleInterval != nil || timeout != nil { sampler.start() }
    var status: Int32 = 0
    var usage = rusage()
    while wait4(pid, &status, 0, &usage) < 0 && errno == EINTR {}
    var wall = monotonic() - start
    sampler.stop()
    var user = Double(usage.ru_utime.tv_sec) + Double(usage.ru_utime.tv_usec) / 1e6
    var system = Double(usage.ru_stime.tv_sec) + Double(usage.ru_stime.tv_usec) / 1e6
    var maxRSS: UInt64 = 0
    var programPid: Int32? = report == nil ? pid : nil
    if let report {
      let fields = (readProcFile(report) ?? "").split(whereSeparator: { $0 == " " || $0 == "\n" }).map(String.init)
      try? FileManager.default.removeItem(atPath: report)
      var values: [String: String] = [:]
      for i in stride(from: 0, to: fields.count - 1, by: 2) { values[fields[i]] = fields[i + 1] }
      programPid = values["pid"].flatMap(Int32.init)
      if let e = values["exec-error"].flatMap(Int32.init) {
        throw CLIError("cannot run \(spec.argv[0]): \(String(cString: strerror(e)))", status: 127)
      }
      if let raw = values["status"].flatMap(Int32.init) {
        status = raw
        wall = values["wall"].flatMap(Double.init) ?? wall
        user = values["utime"].flatMap(Double.init) ?? user
        system = values["stime"].flatMap(Double.init) ?? system
        maxRSS = (values["maxrss_kib"].flatMap(UInt64.init) ?? 0) * 1024
      }
    }
    if spec.newProcessGroup { kill(-pid, SIGKILL) }  // leftovers of the tree (a crashed compiler's children)
    let termination = status & 0x7f
    let signal: Int32? = termination != 0 && termination != 0x7f ? termination : nil
    return Measurement(
      wallSeconds: wall, userSeconds: user, systemSeconds: system,
      maxRSSBytes: maxRSS, peakRSSBytes: max(maxRSS, sampler.peak), samples: sampler.count,
      status: signal.map { 128 + $0 } ?? ((status >> 8) & 0xff), signal: signal, timedOut: sampler.timedOut,
      pid: programPid)
  }

  /// The program's pid as the helper wrote it at the start of its report.
  static func programPid(report: String) -> Int32? {
    guard let text = readProcFile(report) else { return nil }
    let fields = text.split(whereSeparator: { $0 == " " || $0 == "\n" })
    return fields.count >= 2 && fields[0] == "pid" ? Int32(fields[1]) : nil
  }

  /// compare and measure: the program has a process group of its own, which
  /// the terminal's ^C does not reach; SIGINT, SIGTERM and SIGHUP here kill
  /// that group and end this tool (128 + the signal).
  static func killTreeOnInterrupt() {
    for s in [SIGINT, SIGTERM, SIGHUP] {
      signal(s) { sig in
        let pid = forwardSignalsTo
        if pid > 0 { kill(-pid, SIGKILL) }
        _exit(128 + sig)
      }
    }
  }

  /// While the child runs: SIGINT and SIGQUIT (the terminal sends them to
  /// the child as well) are ignored here; SIGTERM and SIGHUP are passed on.
  static func forwardSignals() {
    signal(SIGINT, SIG_IGN)
    signal(SIGQUIT, SIG_IGN)
    for s in [SIGTERM, SIGHUP] {
      signal(s) { sig in
        let pid = forwardSignalsTo
        if pid > 0 { kill(forwardToGroup ? -pid : pid, sig) }
      }
    }
  }
}

/// Samples the resident memory of a process tree until stopped.
final class TreeSampler: @unchecked Sendable {
  let root: pid_t
  let interval: Double
  let timeout: Double?
  let group: Bool
  let excludeRoot: Bool
  private let lock = NSLock()
  private var stopped = false
  private var done = DispatchSemaphore(value: 0)
  private var started = false
  private(set) var peak: UInt64 = 0
  private(set) var count = 0
  private(set) var timedOut = false
  static let pageSize = UInt64(sysconf(Int32(_SC_PAGESIZE)))

  init(root: pid_t, interval: Double, timeout: Double?, group: Bool, excludeRoot: Bool) {
    self.root = root
    self.excludeRoot = excludeRoot
    self.interval = interval
    self.timeout = timeout
    self.group = group
  }

  func start() {
    started = true
    let t0 = Spawner.monotonic()
    let thread = Thread { [self] in
      let step = interval > 0 ? interval : 0.05
      while true {
        lock.lock()
        let stop = stopped
        lock.unlock()
        if stop { break }
        if interval > 0 {
          let rss = Self.treeRSS(root, excludeRoot: excludeRoot)
          lock.lock()
          if rss > peak { peak = rss }
          count += 1
          lock.unlock()
        }
        if let timeout, Spawner.monotonic() - t0 > timeout {
          lock.lock()
          timedOut = true
          lock.unlock()
          kill(group ? -root : root, SIGKILL)
          break
        }
        usleep(UInt32(step * 1e6))
      }
      done.signal()
    }
    thread.start()
  }

  func stop() {
    guard started else { return }
    lock.lock()
    stopped = true
    lock.unlock()
    done.wait()
  }

  /// The sum of the resident sets of `root` and its descendants (bytes).
  static func treeRSS(_ root: pid_t, excludeRoot: Bool = false) -> UInt64 {
    var total: UInt64 = 0
    for pid in descendants(of: root) where !(excludeRoot && pid == root) {
      guard let statm = readProcFile("/proc/\(pid)/statm") else { continue }
      let fields = statm.split(separator: " ")
      if fields.count > 1, let pages = UInt64(fields[1]) { total += pages * pageSize }
    }
    return total
  }

  /// `root` and every process below it (through /proc/PID/task/TID/children).
  static func descendants(of root: pid_t) -> [pid_t] {
    var result = [root]
    var i = 0
    while i < result.count {
      let pid = result[i]
      i += 1
      let tasks = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/task")) ?? []
      for tid in tasks {
        guard let children = readProcFile("/proc/\(pid)/task/\(tid)/children") else { continue }
        for child in children.split(separator: " ") {
          if let c = pid_t(child.trimmingCharacters(in: .whitespacesAndNewlines)), !result.contains(c) {
            result.append(c)
          }
        }
      }
    }
    return result
  }
}

/// A small file of /proc (their size reads 0, so read until EOF).
func readProcFile(_ path: String) -> String? {
  let fd = open(path, O_RDONLY | O_CLOEXEC)
  if fd < 0 { return nil }
  defer { close(fd) }
  var data = [UInt8]()
  var buffer = [UInt8](repeating: 0, count: 4096)
  while true {
    let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, 4096) }
    if n <= 0 { break }
    data.append(contentsOf: buffer[0..<n])
  }
  return String(decoding: data, as: UTF8.self)
}
