// `swiftmalloc top PID`: the heap of a running process, read from the live
// page the library publishes when started with SWIFTMALLOC_LIVE=1
// (Sources/CShim/include/swm_live.h; the reader is Sources/CLiveReader).

import ArgumentParser
import CLiveReader
import Foundation
#if canImport(Glibc)
import Glibc
#endif

struct TopCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "top",
    abstract: "Watch the heap of a process started with SWIFTMALLOC_LIVE=1.",
    discussion: """
      The process must run on swiftmalloc with SWIFTMALLOC_LIVE=1 in its
      environment (or be started by `swiftmalloc run --live`): the library then
      publishes its counters in /dev/shm/swiftmalloc-UID-PID, readable by its
      owner only. Without a PID, lists the processes of this user that publish one.
      """)

  @Argument(help: "The process to watch.")
  var pid: Int32?

  @Flag(help: "Print one snapshot and exit.")
  var once = false

  @Flag(help: "With --once: the snapshot as JSON.")
  var json = false

  @Option(help: ArgumentHelp("Seconds between refreshes.", valueName: "s"))
  var interval: Double = 1

  @Option(help: ArgumentHelp("Stop after this many refreshes.", valueName: "n"))
  var count: Int?

  func validate() throws {
    if json && !once { throw ValidationError("--json needs --once") }
    if interval <= 0 { throw ValidationError("--interval must be positive") }
    if let pid, pid <= 0 { throw ValidationError("PID must be a positive process id") }
  }

  func run() throws {
    guard let pid else {
      LivePage.list()
      return
    }
    let page: LivePage
    do { page = try LivePage.open(pid: pid) } catch let e as CLIError { exitWith(e) }
    if once {
      guard let snap = page.snapshot() else { exitWith(CLIError("cannot read a consistent snapshot of \(page.path)")) }
      print(json ? snap.json() : snap.text(width: 100), terminator: "")
      return
    }
    var shown = 0
    let width = Int(ProcessInfo.processInfo.environment["COLUMNS"] ?? "") ?? terminalWidth()
    while true {
      guard kill(pid, 0) == 0 || errno == EPERM else {
        print("swiftmalloc top: process \(pid) has exited")
        return
      }
      guard let snap = page.snapshot() else { exitWith(CLIError("cannot read a consistent snapshot of \(page.path)")) }
      print("\u{1b}[H\u{1b}[2J" + snap.text(width: width), terminator: "")
      fflush(nil)
      shown += 1
      if let count, shown >= count { return }
      usleep(UInt32(interval * 1e6))
    }
  }

  func terminalWidth() -> Int {
    var ws = winsize()
    if ioctl(1, UInt(TIOCGWINSZ), &ws) == 0 && ws.ws_col > 20 { return Int(ws.ws_col) }
    return 100
  }
}

/// A process's live page, mapped read-only.
struct LivePage {
  var pid: Int32
  var path: String
  var base: UnsafeRawPointer
  var bytes: Int

  static func realUID(_ pid: Int32) -> uid_t? {
    guard let status = readProcFile("/proc/\(pid)/status"),
          let line = status.split(separator: "\n").first(where: { $0.hasPrefix("Uid:") }) else { return nil }
    return line.split(whereSeparator: { $0 == " " || $0 == "\t" }).dropFirst().first.flatMap { uid_t($0) }
  }

  static func command(_ pid: Int32) -> String {
    (readProcFile("/proc/\(pid)/comm") ?? "?").trimmingCharacters(in: .whitespacesAndNewlines)
  }

  static func path(uid: uid_t, pid: Int32) -> String { "\(String(cString: swm_live_path_prefix()))\(uid)-\(pid)" }

  static func open(pid: Int32) throws -> LivePage {
    guard let uid = realUID(pid) else {
      let stale = path(uid: getuid(), pid: pid)
      if FileManager.default.fileExists(atPath: stale) {
        throw CLIError("process \(pid) is not running; its live page \(stale) was left behind (remove it, or run `swiftmalloc top` to list pages)")
      }
      throw CLIError("no process \(pid)")
    }
    let p = path(uid: uid, pid: pid)
    let fd = Glibc.open(p, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)
    if fd < 0 {
      let e = errno
      let name = command(pid)
      let maps = readProcFile("/proc/\(pid)/maps") ?? ""
      let library = (try? Library.find(explicit: nil)) ?? "/path/to/libswiftmalloc.so"
      if e == ENOENT {
        let how = "start it with `swiftmalloc run --live -- PROGRAM`, or with SWIFTMALLOC_LIVE=1 LD_PRELOAD=\(library) PROGRAM"
        if maps.contains("libswiftmalloc") {
          throw CLIError("process \(pid) (\(name)) runs on swiftmalloc but publishes no live page (it was started without SWIFTMALLOC_LIVE=1): \(how)")
        }
        throw CLIError("process \(pid) (\(name)) has no swiftmalloc live page: \(how)")
      }
      throw CLIError("cannot open \(p): \(String(cString: strerror(e)))")
    }
    defer { close(fd) }
    var st = stat()
    guard fstat(fd, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG else { throw CLIError("\(p) is not a live page") }
    guard st.st_uid == uid else { throw CLIError("\(p) belongs to uid \(st.st_uid), not to the process's owner \(uid): not trusted") }
    if st.st_mode & 0o077 != 0 { throw CLIError("\(p) is readable by others: not a page swiftmalloc made") }
    let size = Int(st.st_size)
    guard size >= MemoryLayout<swm_live_page_t>.size else { throw CLIError("\(p) is too small for a live page (\(size) bytes)") }
    guard let m = mmap(nil, size, PROT_READ, MAP_SHARED, fd, 0), m != MAP_FAILED else {
      throw CLIError("cannot map \(p): \(String(cString: strerror(errno)))")
    }
    return LivePage(pid: pid, path: p, base: UnsafeRawPointer(m), bytes: size)
  }

  func snapshot() -> LiveSnapshot? {
    var page = swm_live_page_t()
    let rc = swm_live_snapshot(base, bytes, &page)
    guard rc == 0 else { return nil }
    return LiveSnapshot(page: page, pid: pid)
  }

  /// The pages of this user in /dev/shm, each with its process (or "gone").
  static func list() {
    let prefix = "swiftmalloc-\(getuid())-"
    let names = ((try? FileManager.default.contentsOfDirectory(atPath: "/dev/shm")) ?? []).filter { $0.hasPrefix(prefix) }
    if names.isEmpty {
      print("no process of this user publishes a live page (start one with `swiftmalloc run --live -- PROGRAM`)")
      return
    }
    for name in names.sorted() {
      guard let pid = Int32(name.dropFirst(prefix.count)) else { continue }
      if realUID(pid) == nil {
        print("\(pid)\t(gone: /dev/shm/\(name) left behind)")
      } else if let page = try? LivePage.open(pid: pid), let snap = page.snapshot() {
        print("\(pid)\t\(command(pid))\tin use \(formatBytes(snap.inUse))")
      }
    }
  }

  /// Removes the pages of this user whose process is gone and that were made
  /// at or after `sinceMs` (CLOCK_MONOTONIC_COARSE): what a run left behind
  /// (processes that ended without exit handlers, such as a shell's _exit).
  static func removeStale(sinceMs: UInt64) -> Int {
    let prefix = "swiftmalloc-\(getuid())-"
    var removed = 0
    for name in (try? FileManager.default.contentsOfDirectory(atPath: "/dev/shm")) ?? [] where name.hasPrefix(prefix) {
      guard let pid = Int32(name.dropFirst(prefix.count)), kill(pid, 0) != 0 && errno == ESRCH else { continue }
      let p = "/dev/shm/\(name)"
      let fd = Glibc.open(p, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)
      if fd < 0 { continue }
      var st = stat()
      var started: UInt64 = 0
      if fstat(fd, &st) == 0, st.st_uid == getuid(), Int(st.st_size) >= MemoryLayout<swm_live_page_t>.size,
         let m = mmap(nil, Int(st.st_size), PROT_READ, MAP_SHARED, fd, 0), m != MAP_FAILED {
        var page = swm_live_page_t()
        if swm_live_snapshot(m, Int(st.st_size), &page) == 0 && page.pid == UInt64(pid) { started = page.started_ms }
        munmap(m, Int(st.st_size))
      }
      close(fd)
      if started >= sinceMs && started != 0 && unlink(p) == 0 { removed += 1 }
    }
    return removed
  }

  static func coarseNowMs() -> UInt64 {
    var t = timespec()
    clock_gettime(CLOCK_MONOTONIC_COARSE, &t)
    return UInt64(t.tv_sec) * 1000 + UInt64(t.tv_nsec) / 1_000_000
  }
}

func formatBytes(_ v: UInt64) -> String {
  let d = Double(v)
  if d >= 1073741824 { return String(format: "%.2f GiB", d / 1073741824) }
  if d >= 1048576 { return String(format: "%.1f MiB", d / 1048576) }
  if d >= 1024 { return String(format: "%.1f KiB", d / 1024) }
  return "\(v) B"
}

struct LiveSnapshot {
  var page: swm_live_page_t
  var pid: Int32

  struct SizeClass {
    var index: Int
    var size: UInt64
    var spans: UInt64
    var blocks: UInt64
    var free: UInt64
    var inUse: UInt64 { blocks >= free ? blocks - free : 0 }
  }

  var classes: [SizeClass] {
    let n = min(Int(page.class_count), Int(swm_live_max_classes()))
    return (1..<max(n, 1)).compactMap { c in
      let e = swm_live_class_at([page], UInt32(c))
      return SizeClass(index: c, size: e.size, spans: e.spans, blocks: e.spans * e.per_span, free: e.free)
    }
  }

  var inUse: UInt64 { page.uordblks + page.hblkhd }

  /// VmRSS and VmHWM of the process (bytes), from /proc.
  var resident: (now: UInt64, peak: UInt64) {
    let status = readProcFile("/proc/\(pid)/status") ?? ""
    func field(_ name: String) -> UInt64 {
      guard let line = status.split(separator: "\n").first(where: { $0.hasPrefix(name + ":") }) else { return 0 }
      return (line.split(whereSeparator: { $0 == " " || $0 == "\t" }).dropFirst().first.flatMap { UInt64($0) } ?? 0) * 1024
    }
    return (field("VmRSS"), field("VmHWM"))
  }

  var ageMs: UInt64 { let now = LivePage.coarseNowMs(); return now > page.updated_ms ? now - page.updated_ms : 0 }

  /// Memory by where it is (bytes).
  var places: [(String, UInt64)] {
    let cls = classes
    let smallInUse = cls.reduce(0) { $0 + $1.inUse * $1.size }
    let smallFree = cls.reduce(0) { $0 + $1.free * $1.size }
    let freePages = page.fordblks > smallFree + page.released ? page.fordblks - smallFree - page.released : 0
    return [
      ("small blocks in use", smallInUse),
      ("page runs in use", page.uordblks > smallInUse ? page.uordblks - smallInUse : 0),
      ("mmap blocks (\(page.hblks))", page.hblkhd),
      ("free small blocks", smallFree),
      ("free pages, resident", freePages),
      ("free pages, released", page.released),
      ("metadata", page.meta),
    ]
  }

  func json() -> String {
    let res = resident
    let totals: [String: Any] = [
      "in_use": inUse, "in_use_peak": page.in_use_peak, "heap_in_use": page.uordblks, "heap_free": page.fordblks,
      "released": page.released, "sbrk_heap": page.arena, "mmap_regions": page.region_mmap,
      "mmap_blocks": page.hblks, "mmap_block_bytes": page.hblkhd, "mmap_blocks_peak": page.hblks_peak,
      "mmap_block_bytes_peak": page.hblkhd_peak, "top_trimmable": page.keepcost, "metadata": page.meta,
      "threads": page.threads, "resident": res.now, "resident_peak": res.peak,
    ]
    let cls: [[String: Any]] = classes.filter { $0.spans > 0 }.map {
      ["class": $0.index, "size": $0.size, "spans": $0.spans, "blocks": $0.blocks, "in_use": $0.inUse, "free": $0.free]
    }
    var where_: [String: Any] = [:]
    for (name, bytes) in places { where_[name] = bytes }
    let doc: [String: Any] = [
      "pid": Int(pid), "program": LivePage.command(pid), "page_version": page.version, "secure": page.secure != 0,
      "uptime_ms": LivePage.coarseNowMs() - page.started_ms, "age_ms": ageMs, "updates": page.updates,
      "class_updates": page.class_updates, "totals": totals, "where": where_, "classes": cls,
    ]
    let data = (try? JSONSerialization.data(withJSONObject: doc, options: [.prettyPrinted, .sortedKeys])) ?? Data()
    return String(decoding: data, as: UTF8.self) + "\n"
  }

  func text(width: Int) -> String {
    let res = resident
    var s = "swiftmalloc top: pid \(pid) (\(LivePage.command(pid)))\(page.secure != 0 ? ", secure mode" : "")"
    s += String(format: ", up %.1f s, updated %llu ms ago\n\n", Double(LivePage.coarseNowMs() - page.started_ms) / 1000, ageMs)
    s += "  in use \(formatBytes(inUse)) (peak \(formatBytes(page.in_use_peak)))   resident \(formatBytes(res.now))"
    s += " (peak \(formatBytes(res.peak)))   threads \(page.threads)\n"
    s += "  sbrk heap \(formatBytes(page.arena))   mmap regions \(formatBytes(page.region_mmap))"
    s += "   top (trimmable) \(formatBytes(page.keepcost))\n\n"
    for (name, bytes) in places {
      s += "  " + name.padding(toLength: 24, withPad: " ", startingAt: 0)
        + formatBytes(bytes).leftPad(11) + "\n"
    }
    let live = classes.filter { $0.spans > 0 }
    s += "\n  size class        in use        free  " + "blocks in use \u{2588} / free \u{2591}\n"
    let barWidth = max(10, min(50, width - 42))
    for c in live {
      let filled = c.blocks == 0 ? 0 : Int((Double(c.inUse) / Double(c.blocks) * Double(barWidth)).rounded())
      let bar = String(repeating: "\u{2588}", count: filled) + String(repeating: "\u{2591}", count: barWidth - filled)
      s += "  " + "\(c.size) B".leftPad(9) + "\(c.inUse)".leftPad(13) + "\(c.free)".leftPad(12) + "  " + bar + "\n"
    }
    if live.isEmpty { s += "  (no small blocks yet)\n" }
    return s
  }
}

extension String {
  func leftPad(_ n: Int) -> String { count >= n ? self : String(repeating: " ", count: n - count) + self }
}
