//! sitemaps.org sitemaps and sitemap index files: the page URLs they list, bounded by a page
//! limit (a sitemap index is followed one level, as the protocol allows).

use roxmltree::Document;

use crate::fetch::{Fetcher, is_html};

/// What a sitemap document lists.
#[derive(Debug, PartialEq, Eq)]
pub enum Listing {
    /// `<urlset>`: page URLs.
    Pages(Vec<String>),
    /// `<sitemapindex>`: more sitemaps.
    Sitemaps(Vec<String>),
}

/// Parse a sitemap or sitemap index (namespace-agnostic, `<loc>` values trimmed).
pub fn parse(xml: &str) -> Result<Listing, String> {
    let doc = Document::parse(xml).map_err(|e| format!("not valid xml: {e}"))?;
    let root = doc.root_element();
    let (item, pages) = match root.tag_name().name() {
        "urlset" => ("url", true),
        "sitemapindex" => ("sitemap", false),
        other => {
            return Err(format!(
                "the root element is <{other}>, not <urlset> or <sitemapindex>"
            ));
        }
    };
    let locs: Vec<String> = root
        .children()
        .filter(|n| n.is_element() && n.tag_name().name() == item)
        .filter_map(|n| {
            n.children()
                .find(|c| c.is_element() && c.tag_name().name() == "loc")
                .and_then(|l| l.text())
                .map(|t| t.trim().to_string())
        })
        .filter(|t| !t.is_empty())
        .collect();
    Ok(if pages {
        Listing::Pages(locs)
    } else {
        Listing::Sitemaps(locs)
    })
}

/// Collect up to `limit` page URLs from a sitemap (or a sitemap index and the sitemaps it lists).
/// Returns the URLs and notes (e.g. a child sitemap that could not be read, the limit reached).
pub async fn collect(
    fetcher: &Fetcher,
    sitemap_url: &str,
    limit: usize,
    out: &mut Vec<String>,
    notes: &mut Vec<String>,
) -> Result<(), String> {
    let listing = fetch_listing(fetcher, sitemap_url).await?;
    let children = match listing {
        Listing::Pages(p) => {
            push_bounded(out, p, limit, sitemap_url, notes);
            return Ok(());
        }
        Listing::Sitemaps(s) => s,
    };
    for child in children {
        if out.len() >= limit {
            notes.push(format!(
                "page limit {limit} reached: sitemaps after {child} in {sitemap_url} not read"
            ));
            break;
        }
        match fetch_listing(fetcher, &child).await {
            Ok(Listing::Pages(p)) => push_bounded(out, p, limit, &child, notes),
            Ok(Listing::Sitemaps(_)) => notes.push(format!(
                "{child}: a sitemap index inside a sitemap index is not allowed by the protocol; skipped"
            )),
            Err(e) => notes.push(format!("{child}: {e}")),
        }
    }
    Ok(())
}

fn push_bounded(
    out: &mut Vec<String>,
    pages: Vec<String>,
    limit: usize,
    from: &str,
    notes: &mut Vec<String>,
) {
    let total = pages.len();
    for p in pages {
        if out.len() >= limit {
            notes.push(format!(
                "page limit {limit} reached: {} of the {total} pages of {from} not audited",
                total - total.min(limit)
            ));
            return;
        }
        if !out.contains(&p) {
            out.push(p);
        }
    }
}

async fn fetch_listing(fetcher: &Fetcher, url: &str) -> Result<Listing, String> {
    let f = fetcher
        .fetch(url)
        .await
        .map_err(|e| format!("sitemap {url}: {e}"))?;
    if !(200..300).contains(&f.status) {
        return Err(format!("sitemap {url}: answered {}", f.status));
    }
    if f.truncated {
        return Err(format!(
            "sitemap {url}: larger than the byte cap of {} bytes",
            fetcher.options().max_bytes
        ));
    }
    if f.body.starts_with(&[0x1f, 0x8b]) {
        return Err(format!(
            "sitemap {url}: gzip-compressed sitemaps are not supported; list the uncompressed sitemap"
        ));
    }
    if is_html(f.content_type.as_deref()) && f.content_type.is_some() {
        return Err(format!("sitemap {url}: served as html, not xml"));
    }
    let (text, _) = crate::fetch::decode(&f.body, None);
    let listing = parse(&text).map_err(|e| format!("sitemap {url}: {e}"))?;
    // The protocol wants absolute URLs; relative ones are resolved against the sitemap's URL.
    let abs = |v: Vec<String>| -> Vec<String> {
        v.into_iter()
            .filter_map(|l| f.final_url.join(&l).ok().map(|u| u.to_string()))
            .collect()
    };
    Ok(match listing {
        Listing::Pages(p) => Listing::Pages(abs(p)),
        Listing::Sitemaps(s) => Listing::Sitemaps(abs(s)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urlset_and_index() {
        let set = r#"<?xml version="1.0" encoding="UTF-8"?>
<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">
  <url><loc> https://example.com/a </loc><lastmod>2025-01-01</lastmod></url>
  <url><loc>https://example.com/b?x=1&amp;y=2</loc></url>
</urlset>"#;
        assert_eq!(
            parse(set),
            Ok(Listing::Pages(vec![
                "https://example.com/a".into(),
                "https://example.com/b?x=1&y=2".into()
            ]))
        );
        let idx = r#"<sitemapindex xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">
  <sitemap><loc>https://example.com/s1.xml</loc></sitemap></sitemapindex>"#;
        assert_eq!(
            parse(idx),
            Ok(Listing::Sitemaps(vec!["https://example.com/s1.xml".into()]))
        );
        assert!(parse("<html></html>").is_err());
        assert!(parse("<urlset>").is_err());
    }
}
