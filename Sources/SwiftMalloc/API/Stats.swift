import CShim

// See Malloc.swift for an overview.

/// The numbers behind malloc_stats, malloc_info, swm_stats_json and the
/// report at exit (Sources/CShim/exports/stats.c formats them;
/// docs/statistics.md says what each one counts). Each layer keeps its own
/// counters in its State (OSMemory: sbrk calls, regions, trims; PageHeap:
/// madvise calls, decays, guards; LargeBlocks: mmap, munmap, mremap; Meta:
/// mappings); this file only reads them, each under its structure's lock
/// where it has one. The thread caches have none: their owners write their
/// bins without a lock, so the counts of other threads' bins are read
/// racily (a batch off while that thread allocates).
///
/// Nothing here is on a fast path, and the fast paths count nothing. The
/// peaks are taken where they can be reached without a fast-path counter:
/// when the page heap grows, when an mmap block is made or grown
/// (noteGrowth), and each time a report is computed.
enum Stats {
  /// Atomic.
  struct State {
    /// The most in-use bytes seen (Report.inUse: thread-cache blocks count).
    var inUsePeak: UInt
    /// The most bytes held from the OS seen.
    var requestedPeak: UInt
  }

  @inline(__always) static var state: UnsafeMutablePointer<State> {
    withUnsafeMutablePointer(to: &Heap.state.pointee.stats) { $0 }
  }

  /// Bytes of a span of `sizeClass` that no block covers.
  static func tailBytes(_ sizeClass: UInt32) -> UInt {
    UInt(swm_class_span_pages(sizeClass)) &<< OSMemory.pageShift
      &- UInt(swm_class_span_objects(sizeClass)) &* UInt(swm_class_to_size(sizeClass))
  }

  /// Bytes held from the OS: the heap (sbrk and regions), mmap blocks and
  /// metadata (read without locks).
  static func requestedBytes() -> UInt {
    OSMemory.state.pointee.sbrkBytes &+ OSMemory.state.pointee.regionMmapBytes &+ LargeBlocks.state.pointee.bytes
      &+ Meta.state.pointee.bytes
  }

  /// After the page heap grew (its lock held) or an mmap block was made or
  /// grown: the peaks, from counters read without their locks.
  static func noteGrowth() {
    let pageHeap = Heap.pageHeap.state
    var free = pageHeap.pointee.unusedBytes &+ Quarantine.bytesUnlocked()
    var c: UInt32 = 1
    while c < UInt32(SWM_NUM_CLASSES) {
      let central = Central.list(c)
      free &+= central.pointee.freeBlocks &* UInt(swm_class_to_size(c)) &+ central.pointee.spans &* tailBytes(c)
      c &+= 1
    }
    let heap = OSMemory.state.pointee.sbrkBytes &+ OSMemory.state.pointee.regionMmapBytes
    let inUse = (heap > free ? heap &- free : 0) &+ LargeBlocks.state.pointee.bytes
    swm_atomic_max(&state.pointee.inUsePeak, inUse)
    swm_atomic_max(&state.pointee.requestedPeak, requestedBytes())
  }

  /// The per-class part: central lists under their locks, then the thread
  /// caches under the meta lock (their counts racily). Returns the bytes
  /// free in central lists, in span tails and in thread caches.
  static func collectClasses(_ classes: UnsafeMutablePointer<swm_class_report_t>) -> (UInt, UInt, UInt) {
    var central: UInt = 0, tails: UInt = 0, cached: UInt = 0
    var c: UInt32 = 1
    while c < UInt32(SWM_NUM_CLASSES) {
      let row = classes + Int(c)
      let size = UInt(swm_class_to_size(c))
      row.pointee = swm_class_report_t()
      row.pointee.size = Int(size)
      row.pointee.span_pages = Int(swm_class_span_pages(c))
      row.pointee.blocks_per_span = Int(swm_class_span_objects(c))
      swm_lock(swm_lock_at(c))
      row.pointee.spans = Int(Central.list(c).pointee.spans)
      row.pointee.central = Int(Central.list(c).pointee.freeBlocks)
      swm_unlock(swm_lock_at(c))
      row.pointee.waste = row.pointee.spans &* Int(tailBytes(c))
      central &+= UInt(row.pointee.central) &* size
      tails &+= UInt(row.pointee.waste)
      c &+= 1
    }
    countCachedBlocks(classes)
    if Heap.state.pointee.mitigations.quarantine {
      Quarantine.forEach { block in
        if let span = PageMap.lookup(UInt(bitPattern: block)) { classes[Int(span.pointee.sizeClass)].quarantined &+= 1 }
      }
    }
    c = 1
    while c < UInt32(SWM_NUM_CLASSES) {
      let row = classes + Int(c)
      cached &+= UInt(row.pointee.cached) &* UInt(row.pointee.size)
      let out = row.pointee.spans &* row.pointee.blocks_per_span
      let free = row.pointee.central &+ row.pointee.cached &+ row.pointee.quarantined
      row.pointee.in_use = out > free ? out &- free : 0
      c &+= 1
    }
    return (central, tails, cached)
  }

  /// Adds every live thread cache's blocks (bins, outgoing lists, inboxes) to
  /// the classes' `cached` (meta lock: the list of caches).
  private static func countCachedBlocks(_ classes: UnsafeMutablePointer<swm_class_report_t>) {
    swm_lock(Meta.lock)
    var cursor = Budget.state.pointee.live
    while let cache = cursor {
      let bins = cache.assumingMemoryBound(to: Bin.self)
      var c: UInt32 = 1
      while c < UInt32(SWM_NUM_CLASSES) {
        let inbox = max(0, Int(bitPattern: swm_atomic_load_relaxed(Remote.count(Remote.inbox(cache), c))))
        classes[Int(c)].cached &+= Int(bins[Int(c)].count) &+ Int(ThreadCache.outgoing(cache, c).pointee.count)
          &+ inbox
        c &+= 1
      }
      cursor = ThreadCache.header(cache).pointee.next
    }
    swm_unlock(Meta.lock)
  }

  /// The page heap's free bytes (dirty and decommitted) and its free spans
  /// by length, under its lock.
  static func collectPageHeap(_ out: UnsafeMutablePointer<swm_report_t>) {
    let heap = Heap.pageHeap
    swm_lock(heap.lock)
    let pageHeap = heap.state
    out.pointee.dirty = Int(pageHeap.pointee.dirtyBytes &+ pageHeap.pointee.guardedBytes)
    out.pointee.decommitted = Int(pageHeap.pointee.cleanBytes)
    out.pointee.guards = Int(pageHeap.pointee.guardBytes)
    let runs = UnsafeMutableRawPointer(withUnsafeMutablePointer(to: &out.pointee.free_runs) { $0 })
      .assumingMemoryBound(to: Int.self)
    let lists = heap.lists
    var n = 1
    while n <= PageHeapState.exactLists {
      runs[n] = Int(lists[n].count)
      n &+= 1
    }
    var cursor = lists[0].head
    while let span = cursor {
      out.pointee.free_long_runs &+= 1
      out.pointee.free_long_bytes &+= Int(span.pointee.bytes)
      out.pointee.free_long_max = max(out.pointee.free_long_max, Int(span.pointee.bytes))
      cursor = span.pointee.next
    }
    out.pointee.heap_peak = Int(OSMemory.state.pointee.heapPeak)
    out.pointee.sbrk_calls = Int(OSMemory.state.pointee.sbrkCalls)
    out.pointee.trims = Int(OSMemory.state.pointee.trims)
    out.pointee.madvise_calls = Int(pageHeap.pointee.madviseCalls)
    out.pointee.decays = Int(pageHeap.pointee.decays)
    let regionMaps = OSMemory.state.pointee.mmapCalls
    swm_unlock(heap.lock)
    let large = LargeBlocks.state
    out.pointee.mmap_calls = Int(regionMaps &+ large.pointee.mmapCalls &+ Meta.state.pointee.mmapCalls)
    out.pointee.munmap_calls = Int(large.pointee.munmapCalls)
    out.pointee.mremap_calls = Int(large.pointee.mremapCalls)
    out.pointee.guard_calls = Int(pageHeap.pointee.guardCalls &+ large.pointee.guardCalls)
  }

  /// The settings in effect and the thread caches' budget.
  static func collectSettings(_ out: UnsafeMutablePointer<swm_report_t>) {
    let state = Heap.state
    out.pointee.mmap_threshold = Int(state.pointee.route.mmapThreshold)
    out.pointee.trim_threshold = Int(bitPattern: state.pointee.pageHeap.trimThreshold)
    out.pointee.top_pad = Int(state.pointee.pageHeap.topPad)
    out.pointee.mmap_max = Int(Options.Option.mmapMax.current)
    out.pointee.dirty_limit = Int(state.pointee.pageHeap.dirtyLimit)
    out.pointee.decay_ms = Int(state.pointee.pageHeap.decayMilliseconds)
    out.pointee.secure = state.pointee.mitigations.quarantine ? 1 : 0
    out.pointee.perturb = Int(state.pointee.mitigations.perturbByte)
    out.pointee.check = Int(state.pointee.options.check)
    out.pointee.caches_live = Int(Meta.state.pointee.liveCaches)
    out.pointee.cache_budget = Int(Budget.state.pointee.budget)
    out.pointee.cache_share = Int(Budget.state.pointee.share)
  }
}

/// Fills a report (any thread, any time after the first allocation or
/// before it; no allocation, no stdio).
@c(swmcore_collect_report)
public func swmcore_collect_report(_ out: UnsafeMutablePointer<swm_report_t>) {
  Heap.ensureInitialized()
  out.pointee = swm_report_t()
  swmcore_collect_stats(&out.pointee.basic)
  let classes = UnsafeMutableRawPointer(withUnsafeMutablePointer(to: &out.pointee.classes) { $0 })
    .assumingMemoryBound(to: swm_class_report_t.self)
  let (central, tails, cached) = Stats.collectClasses(classes)
  Stats.collectPageHeap(out)
  Stats.collectSettings(out)
  let os = OSMemory.state, large = LargeBlocks.state, meta = Meta.state
  let heap = os.pointee.sbrkBytes &+ os.pointee.regionMmapBytes
  let quarantine = Heap.state.pointee.mitigations.quarantine ? Quarantine.bytes() : 0
  let free = UInt(out.pointee.dirty &+ out.pointee.decommitted &+ out.pointee.guards) &+ central &+ tails &+ quarantine
  let mmapBlocks = large.pointee.bytes
  let inUse = (heap > free ? heap &- free : 0) &+ mmapBlocks
  (out.pointee.central, out.pointee.tails, out.pointee.thread_caches) = (Int(central), Int(tails), Int(cached))
  out.pointee.quarantine = Int(quarantine)
  out.pointee.mmap_blocks = Int(mmapBlocks)
  out.pointee.in_use = Int(inUse)
  out.pointee.program = Int(inUse > cached ? inUse &- cached : 0)
  out.pointee.meta_reserved = Int(meta.pointee.bytes)
  out.pointee.meta_resident = Int(meta.pointee.bumpedBytes &+ PageMap.residentBytes())
  out.pointee.requested = Int(Stats.requestedBytes())
  let heapResident = heap &- UInt(out.pointee.decommitted &+ out.pointee.guards)
  out.pointee.resident = Int(heapResident &+ mmapBlocks) &+ out.pointee.meta_resident
  swm_atomic_max(&Stats.state.pointee.inUsePeak, inUse)
  swm_atomic_max(&Stats.state.pointee.requestedPeak, UInt(out.pointee.requested))
  out.pointee.in_use_peak = Int(Stats.state.pointee.inUsePeak)
  out.pointee.requested_peak = Int(Stats.state.pointee.requestedPeak)
}

/// The report at exit: 0 none, 1 text, 2 JSON (SWIFTMALLOC_STATS, _FILE).
@c(swmcore_report_format)
public func swmcore_report_format() -> Int32 {
  Heap.state.pointee.options.statsAtExit ? Int32(Heap.state.pointee.options.statsFormat) : 0
}

/// SWIFTMALLOC_STATS_FILE as set ("" for standard error), %p unexpanded.
@c(swmcore_report_file)
public func swmcore_report_file() -> UnsafePointer<CChar> {
  UnsafePointer(UnsafeRawPointer(Options.statsFile).assumingMemoryBound(to: CChar.self))
}
