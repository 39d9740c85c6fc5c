// A hosted Swift program (it links the Swift runtime, libswiftCore.so) run
// with libswiftmalloc preloaded: the runtime's object allocation goes through
// malloc/posix_memalign/malloc_usable_size/free, so classes, arrays,
// dictionaries and strings all live in our heap. Its output is compared with
// an unpreloaded run.
#if canImport(Glibc)
import Glibc
#endif

final class Node {
  var value: Int
  var children: [Node] = []
  init(_ value: Int) { self.value = value }
}

func build(_ depth: Int, _ seed: inout UInt64) -> Node {
  seed = seed &* 6364136223846793005 &+ 1442695040888963407
  let node = Node(Int(truncatingIfNeeded: seed >> 40))
  if depth > 0 {
    for _ in 0..<Int(seed >> 62) + 1 { node.children.append(build(depth - 1, &seed)) }
  }
  return node
}

func checksum(_ node: Node) -> Int {
  node.children.reduce(node.value) { $0 &+ checksum($1) &* 31 }
}

var seed: UInt64 = 42
var total = 0
for round in 0..<20 {
  let tree = build(9, &seed)
  total = total &+ checksum(tree)
  var words: [String: Int] = [:]
  for i in 0..<20_000 {
    let key = "w\((i &* 7919 &+ round) % 5000)-" + String(repeating: "x", count: i % 40)
    words[key, default: 0] += 1
  }
  total = total &+ words.count &+ words.values.reduce(0, +)
  var numbers = (0..<50_000).map { ($0 &* 2654435761) % 100_003 }
  numbers.sort()
  total = total &+ numbers[numbers.count / 2]
}

// threads: each builds and drops its own structures; one hands an array over
final class Box { var items: [String] = [] }
let boxes = (0..<4).map { _ in Box() }
var threads: [pthread_t] = []
for t in 0..<4 {
  var th = pthread_t()
  let box = Unmanaged.passRetained(boxes[t]).toOpaque()
  pthread_create(&th, nil, { raw in
    let box = Unmanaged<Box>.fromOpaque(raw!).takeRetainedValue()
    for i in 0..<30_000 { box.items.append(String(i, radix: 16)) }
    if box.items.count > 10_000 { box.items.removeFirst(10_000) }
    return nil
  }, box)
  threads.append(th)
}
for th in threads { pthread_join(th, nil) }
let joined = boxes.map { $0.items.joined(separator: ",").count }
print("checksum \(total)")
print("threads \(joined)")
