// The SVG chart of `swiftmalloc compare --chart`: three panels (wall time,
// CPU time, peak RSS), one bar per allocator at its median with a min-max whisker,
// the ratio to glibc under each bar, every value in a <title> (shown on
// hover). Plain SVG 1.1: a browser shows it, and it parses as XML.

import Foundation

enum Chart {
  static let colors = ["glibc": "#7f7f7f", "jemalloc": "#1f77b4", "tcmalloc": "#ff7f0e", "mimalloc": "#2ca02c",
                       "swiftmalloc": "#d62728"]

  static func escape(_ s: String) -> String {
    s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
      .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
  }

  static func svg(_ c: Comparison) -> String {
    let panelWidth = 400.0, height = 400.0, top = 70.0, bottom = 70.0, left = 60.0
    let plotHeight = height - top - bottom
    let width = 3 * panelWidth + 40
    let base = c.glibc.map(c.summary)
    var out = """
      <?xml version="1.0" encoding="UTF-8"?>
      <svg xmlns="http://www.w3.org/2000/svg" width="\(Int(width))" height="\(Int(height))" viewBox="0 0 \(Int(width)) \(Int(height))" font-family="sans-serif" font-size="12">
      <rect width="100%" height="100%" fill="white"/>
      <text x="\(width / 2)" y="22" text-anchor="middle" font-size="15" font-weight="bold">\(escape(c.program.joined(separator: " ")))</text>
      <text x="\(width / 2)" y="40" text-anchor="middle" fill="#555">median of \(c.runs) run\(c.runs == 1 ? "" : "s") per allocator, whiskers min-max; under each bar the ratio to glibc (lower is better)</text>

      """
    let panels: [(String, String, (Comparison.Summary) -> (median: Double, min: Double, max: Double))] = [
      ("wall time (s)", "%.3f s", { $0.wall }), ("CPU time, user + system (s)", "%.3f s", { $0.cpu }),
      ("peak RSS of the process tree (MiB)", "%.1f MiB", { $0.rss }),
    ]
    for (p, panel) in panels.enumerated() {
      let x0 = Double(p) * (panelWidth + 20) + left
      let plotWidth = panelWidth - left - 10
      let values = c.results.map { panel.2(c.summary($0)) }
      let top_ = niceCeiling((values.map(\.max).max() ?? 1) * 1.08)
      func y(_ v: Double) -> Double { top + plotHeight * (1 - v / top_) }
      out += "<g>\n<text x=\"\(x0 + plotWidth / 2)\" y=\"\(top - 12)\" text-anchor=\"middle\" font-weight=\"bold\">\(escape(panel.0))</text>\n"
      for k in 0...4 {
        let v = top_ * Double(k) / 4
        out += String(format: "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#ddd\"/>", x0, y(v), x0 + plotWidth, y(v))
        out += String(format: "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\" fill=\"#555\">%@</text>\n", x0 - 6, y(v) + 4,
                      format(v) as NSString)
      }
      let slot = plotWidth / Double(max(c.results.count, 1))
      for (i, r) in c.results.enumerated() {
        let ratio = base.map { String(format: "%.2fx", values[i].median / max(panel.2($0).median, 1e-12)) } ?? "-"
        out += bar(r.allocator.name, values[i], ratio: ratio, unit: panel.1, cx: x0 + slot * (Double(i) + 0.5),
                   width: min(60, slot * 0.6), baseline: top + plotHeight, y: y)
      }
      out += String(format: "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"black\"/>\n</g>\n", x0, top + plotHeight,
                    x0 + plotWidth, top + plotHeight)
    }
    let when = ISO8601DateFormatter().string(from: c.date)
    out += "<text x=\"\(width / 2)\" y=\"\(height - 10)\" text-anchor=\"middle\" fill=\"#777\" font-size=\"10\">swiftmalloc compare, \(escape(when)), \(escape(Machine.summary))</text>\n"
    out += "</svg>\n"
    return out
  }

  /// One allocator's bar, whisker, labels and hover title.
  static func bar(_ name: String, _ v: (median: Double, min: Double, max: Double), ratio: String, unit: String,
                  cx: Double, width barWidth: Double, baseline: Double, y: (Double) -> Double) -> String {
    let tip = "\(name): " + String(format: unit, v.median) + " median, "
      + String(format: unit, v.min) + " - " + String(format: unit, v.max) + ", \(ratio) glibc"
    var out = "<g><title>\(escape(tip))</title>\n"
    out += String(format: "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"%@\"/>\n", cx - barWidth / 2,
                  y(v.median), barWidth, max(0, baseline - y(v.median)), (colors[name] ?? "#9467bd") as NSString)
    out += String(format: "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"black\"/>", cx, y(v.min), cx, y(v.max))
    out += String(format: "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"black\"/>", cx - 6, y(v.min), cx + 6, y(v.min))
    out += String(format: "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"black\"/>\n", cx - 6, y(v.max), cx + 6, y(v.max))
    out += String(format: "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\" font-size=\"11\">%@</text>\n", cx,
                  y(v.max) - 5, format(v.median) as NSString)
    out += String(format: "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%@</text>\n", cx, baseline + 18,
                  escape(name) as NSString)
    out += String(format: "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\" fill=\"#555\">%@</text>\n</g>\n", cx,
                  baseline + 34, ratio as NSString)
    return out
  }

  static func format(_ v: Double) -> String {
    v >= 100 ? String(format: "%.0f", v) : v >= 10 ? String(format: "%.1f", v) : v >= 1 ? String(format: "%.2f", v)
      : v == 0 ? "0" : String(format: "%.3g", v)
  }

  /// 1, 2, 2.5 or 5 times a power of ten, at least v.
  static func niceCeiling(_ v: Double) -> Double {
    if v <= 0 { return 1 }
    let p = pow(10, floor(log10(v)))
    for m in [1.0, 2, 2.5, 5, 10] where m * p >= v { return m * p }
    return 10 * p
  }
}

enum Machine {
  static var summary: String {
    var model = "unknown CPU"
    if let info = readProcFile("/proc/cpuinfo"),
       let line = info.split(separator: "\n").first(where: { $0.hasPrefix("model name") }),
       let colon = line.firstIndex(of: ":") {
      model = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
    }
    var u = utsname()
    uname(&u)
    let release = withUnsafeBytes(of: &u.release) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
    return "\(ProcessInfo.processInfo.activeProcessorCount) CPUs, \(model), Linux \(release)"
  }
}
