//! Horizontal bar charts as inline SVG, built as text: a `<title>` and `<desc>` for the chart
//! (named by `aria-labelledby`), a `<title>` per bar (its label and value), every text
//! escaped. No scripts, fonts or other resources: the page embeds the markup as it is.

use crate::public::esc;

/// Most bars drawn; the smallest past `MAX_BARS - 1` are drawn as one "others" bar (the table
/// beside the chart lists every figure).
pub const MAX_BARS: usize = 20;

/// Width of the drawing, in CSS pixels.
pub const WIDTH: u32 = 560;
/// Room for the labels, left of the bars.
const LABEL_WIDTH: u32 = 180;
/// Longest bar.
const BAR_MAX: u32 = 300;
/// Height of one row.
const ROW: u32 = 24;
/// Height of one bar.
const BAR_HEIGHT: u32 = 16;
/// Margin above and below the rows.
const PAD: u32 = 6;
/// Longest label drawn, in characters (the bar's `<title>` has it whole).
const LABEL_CHARS: usize = 24;

/// One bar: a label and its value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bar {
    /// What the bar is (a licensee, a dataset, a problem code).
    pub label: String,
    /// Its value.
    pub value: u64,
}

/// `n` with thousands separated by commas.
pub fn group(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn shorten(s: &str) -> String {
    if s.chars().count() <= LABEL_CHARS {
        s.to_owned()
    } else {
        let mut t: String = s.chars().take(LABEL_CHARS - 1).collect();
        t.push('…');
        t
    }
}

/// Every bar, largest first (ties by label): the order of the chart and its table.
pub fn sorted(bars: &[Bar]) -> Vec<Bar> {
    let mut sorted = bars.to_vec();
    sorted.sort_by(|a, b| b.value.cmp(&a.value).then_with(|| a.label.cmp(&b.label)));
    sorted
}

/// The bars to draw: [`sorted`], at most [`MAX_BARS`], the rest summed into one `N others` bar.
pub fn top(bars: &[Bar]) -> Vec<Bar> {
    let mut sorted = sorted(bars);
    if sorted.len() > MAX_BARS {
        let rest = sorted.split_off(MAX_BARS - 1);
        sorted.push(Bar {
            label: format!("{} others", rest.len()),
            value: rest.iter().fold(0u64, |a, b| a.saturating_add(b.value)),
        });
    }
    sorted
}

/// A horizontal bar chart of `bars` titled `title`; `unit` names what a value counts (in each
/// bar's title), `colour` fills the bars (a CSS colour the caller chooses, not user input).
/// `id` makes the chart's element ids unique in the page.
pub fn bar_chart(id: &str, title: &str, unit: &str, colour: &str, bars: &[Bar]) -> String {
    let bars = top(bars);
    let rows = u32::try_from(bars.len()).unwrap_or(u32::MAX).min(MAX_BARS as u32);
    let height = rows * ROW + 2 * PAD;
    let max = bars.iter().map(|b| b.value).max().unwrap_or(0);
    let (id, title, unit) = (esc(id), esc(title), esc(unit));
    let mut out = format!(
        "<svg class=\"chart\" role=\"img\" aria-labelledby=\"{id}-title {id}-desc\" width=\"{WIDTH}\" \
         height=\"{height}\" viewBox=\"0 0 {WIDTH} {height}\" font-family=\"system-ui, sans-serif\" \
         font-size=\"12\"><title id=\"{id}-title\">{title}</title><desc id=\"{id}-desc\">{n} bars, \
         largest first; the table beside the chart lists every figure.</desc>",
        n = bars.len()
    );
    for (i, b) in bars.iter().enumerate() {
        let y = PAD + u32::try_from(i).unwrap_or(0) * ROW;
        let width = if max == 0 || b.value == 0 {
            0
        } else {
            ((b.value as f64 / max as f64) * f64::from(BAR_MAX))
                .round()
                .max(1.0) as u32
        };
        let middle = y + ROW / 2;
        out.push_str(&format!(
            "<g><title>{label}: {value} {unit}</title>\
             <text x=\"{lx}\" y=\"{middle}\" text-anchor=\"end\" dominant-baseline=\"middle\">{short}</text>\
             <rect x=\"{LABEL_WIDTH}\" y=\"{by}\" width=\"{width}\" height=\"{BAR_HEIGHT}\" rx=\"2\" fill=\"{colour}\"/>\
             <text x=\"{vx}\" y=\"{middle}\" dominant-baseline=\"middle\">{value}</text></g>",
            label = esc(&b.label),
            value = group(b.value),
            lx = LABEL_WIDTH - 8,
            short = esc(&shorten(&b.label)),
            by = y + (ROW - BAR_HEIGHT) / 2,
            colour = esc(colour),
            vx = LABEL_WIDTH + width + 6,
        ));
    }
    out.push_str("</svg>");
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    fn bar(label: &str, value: u64) -> Bar {
        Bar {
            label: label.into(),
            value,
        }
    }

    #[test]
    fn bars_scale_to_the_largest_and_text_is_escaped() {
        let svg = bar_chart(
            "c1",
            "Requests <per> licensee",
            "requests",
            "#3566a8",
            &[bar("b&b", 50), bar("acme", 100), bar("idle", 0)],
        );
        assert!(svg.starts_with("<svg class=\"chart\" role=\"img\" aria-labelledby=\"c1-title c1-desc\""));
        assert!(svg.contains("<title id=\"c1-title\">Requests &lt;per&gt; licensee</title>"));
        // Largest first, full width; half of it; nothing for zero.
        let acme = svg.find("acme: 100 requests").unwrap();
        let bb = svg.find("b&amp;b: 50 requests").unwrap();
        assert!(acme < bb);
        assert!(svg.contains(&format!("width=\"{BAR_MAX}\"")));
        assert!(svg.contains(&format!("width=\"{}\"", BAR_MAX / 2)));
        assert!(svg.contains("<title>idle: 0 requests</title>"));
        assert!(svg.contains("width=\"0\""));
        assert!(!svg.contains("b&b"), "unescaped: {svg}");
        assert_eq!(svg.matches("<g>").count(), 3);
        assert!(svg.ends_with("</svg>"));
    }

    #[test]
    fn many_bars_end_in_one_others_bar_and_long_labels_are_cut() {
        let bars: Vec<Bar> = (0..30).map(|i| bar(&format!("l{i:02}"), 100 - i)).collect();
        let drawn = top(&bars);
        assert_eq!(drawn.len(), MAX_BARS);
        assert_eq!(drawn[0], bar("l00", 100));
        let rest: u64 = (MAX_BARS as u64 - 1..30).map(|i| 100 - i).sum();
        assert_eq!(drawn[MAX_BARS - 1], bar("11 others", rest));
        let long = "x".repeat(40);
        let svg = bar_chart("c", "t", "u", "red", &[bar(&long, 1)]);
        assert!(svg.contains(&format!("<title>{long}: 1 u</title>")));
        assert!(svg.contains(&format!(">{}…</text>", "x".repeat(LABEL_CHARS - 1))));
        assert_eq!(group(1_234_567), "1,234,567");
        assert_eq!(group(999), "999");
        assert_eq!(group(0), "0");
        assert_eq!(esc("<'\"&>"), "&lt;&#39;&quot;&amp;&gt;");
    }
}
