// SPDX-License-Identifier: MIT
//! Builds the viewer page that `GET /` serves: `web/index.html` with `web/viewer.css` and the
//! ES modules of `web/js/` put inline, written to `$OUT_DIR/viewer.html`. One self-contained
//! file, because the page must load with nothing but its own URL (which may carry `?token=`).
//!
//! The modules go into one `<script type="module">`, concatenated in dependency order (each
//! after the modules it imports), with their import lines removed and `export ` dropped. They
//! then share one scope, so the build accepts only what keeps that the same program as the
//! modules loaded one by one, and fails with the file and line of anything else:
//!
//! - imports are `import { a, b } from './file.js';` on one line, of a file in `web/js/`
//!   that exports those names: no renames, default, namespace or side-effect imports, no
//!   dynamic `import()`;
//! - exports are `export function`, `export async function`, `export class` or
//!   `export const`: no `export let` (no shared mutable state), `export default` or lists;
//! - no two modules declare the same top-level name, and no module declares `var`;
//! - no import cycles, and every module is reachable from `main.js`;
//! - no `</script` or `<!--` in a module, no `</style` in the stylesheet.
//!
//! What the build cannot see, a module using another's name without importing it (the shared
//! scope would hide that), web/tests/unbundled.test.mjs catches by loading the modules as
//! they are.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// The two tags of `web/index.html` that the stylesheet and the modules replace. As they are,
/// they load the same files from a folder (`document-root`), unbundled.
const STYLE_TAG: &str = r#"<link rel="stylesheet" href="viewer.css">"#;
const SCRIPT_TAG: &str = r#"<script type="module" src="js/main.js"></script>"#;
const ENTRY: &str = "main.js";

fn main() {
    let manifest_dir = PathBuf::from(
        std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"),
    );
    let out =
        PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR")).join("viewer.html");
    let web = manifest_dir.join("../web");

    if !web.is_dir() {
        // Docker's dependency layer (packaging/docker/recipe.sh) has the manifests and build
        // scripts but no sources, and compiles nothing that includes the page. A real build
        // without web/ fails at the include_str! of viewer.html, after this warning.
        println!("cargo:rerun-if-changed={}", web.display());
        println!(
            "cargo:warning=no {} folder: the viewer page is not built",
            web.display()
        );
        return;
    }

    let js_dir = web.join("js");
    let html_path = web.join("index.html");
    let css_path = web.join("viewer.css");
    println!("cargo:rerun-if-changed={}", html_path.display());
    println!("cargo:rerun-if-changed={}", css_path.display());
    // The folder itself too, so that a new module is noticed.
    println!("cargo:rerun-if-changed={}", js_dir.display());
    let module_paths = list_modules(&js_dir);
    for path in &module_paths {
        println!("cargo:rerun-if-changed={}", path.display());
    }

    let html = read(&html_path);
    let css = read(&css_path);
    let sources: Vec<(String, String)> = module_paths
        .iter()
        .map(|path| (file_name(path), read(path)))
        .collect();

    match build_page(&html, &css, &sources) {
        Ok(page) => fs::write(&out, page)
            .unwrap_or_else(|err| panic!("cannot write {}: {err}", out.display())),
        Err(errors) => {
            eprintln!("error: the viewer page (web/) cannot be built:");
            for e in &errors {
                eprintln!("  {e}");
            }
            std::process::exit(1);
        }
    }
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|err| {
        panic!(
            "cannot read {} (a file of the viewer page): {err}",
            path.display()
        )
    })
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_else(|| panic!("{}: not a UTF-8 file name", path.display()))
        .to_string()
}

/// The `*.js` files in `web/js/`, by name.
fn list_modules(dir: &Path) -> Vec<PathBuf> {
    let entries = fs::read_dir(dir).unwrap_or_else(|err| {
        panic!(
            "cannot list the viewer's modules in {}: {err}",
            dir.display()
        )
    });
    let mut paths: Vec<PathBuf> = entries
        .map(|entry| {
            entry
                .unwrap_or_else(|err| panic!("cannot list {}: {err}", dir.display()))
                .path()
        })
        .filter(|p| p.is_file() && p.extension().is_some_and(|e| e == "js"))
        .collect();
    paths.sort();
    paths
}

/// The page, or every problem found.
fn build_page(html: &str, css: &str, sources: &[(String, String)]) -> Result<String, Vec<String>> {
    let mut errors = Vec::new();
    check_markup(html, &mut errors);
    if contains_ignore_case(css, "</style") {
        errors
            .push("web/viewer.css: contains `</style`, which would end the inline <style>".into());
    }

    let mut modules = BTreeMap::new();
    for (name, source) in sources {
        match scan_module(source) {
            Ok(module) => {
                modules.insert(name.clone(), module);
            }
            Err(es) => errors.extend(es.into_iter().map(|e| format!("web/js/{name}:{e}"))),
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }

    check_imports(&modules, &mut errors);
    if !errors.is_empty() {
        return Err(errors);
    }
    let order = match dependency_order(&modules) {
        Ok(order) => order,
        Err(e) => {
            errors.push(e);
            return Err(errors);
        }
    };
    check_top_level_names(&modules, &order, &mut errors);
    if !errors.is_empty() {
        return Err(errors);
    }

    let mut bundle =
        String::from("// The modules of web/js/, in dependency order (wsjpeg-server/build.rs).\n");
    for name in &order {
        let source = &sources.iter().find(|(n, _)| n == name).expect("scanned").1;
        let body = modules[name].bundled(source);
        if contains_ignore_case(&body, "</script") || body.contains("<!--") {
            errors.push(format!(
                "web/js/{name}: contains `</script` or `<!--`, which the inline <script> cannot hold"
            ));
        }
        bundle.push_str(&format!("\n// ---- js/{name}\n"));
        bundle.push_str(&body);
        if !bundle.ends_with('\n') {
            bundle.push('\n');
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }

    let mut page = String::with_capacity(html.len() + css.len() + bundle.len() + 64);
    for line in html.split_inclusive('\n') {
        match line.trim() {
            STYLE_TAG => {
                page.push_str("<style>\n");
                page.push_str(css);
                if !css.ends_with('\n') {
                    page.push('\n');
                }
                page.push_str("</style>\n");
            }
            SCRIPT_TAG => {
                page.push_str("<script type=\"module\">\n");
                page.push_str(&bundle);
                page.push_str("</script>\n");
            }
            _ => page.push_str(line),
        }
    }
    Ok(page)
}

/// `web/index.html` is markup: each tag to replace on a line of its own, once, and no other
/// stylesheet or script.
fn check_markup(html: &str, errors: &mut Vec<String>) {
    for tag in [STYLE_TAG, SCRIPT_TAG] {
        let lines = html.lines().filter(|l| l.trim() == tag).count();
        if lines != 1 {
            errors.push(format!(
                "web/index.html: `{tag}` must be on a line of its own exactly once (found {lines})"
            ));
        }
    }
    let scripts = count_ignore_case(html, "<script");
    let styles = count_ignore_case(html, "<style");
    let stylesheets = count_ignore_case(html, "rel=\"stylesheet\"");
    if scripts != 1 || styles != 0 || stylesheets != 1 {
        errors.push(
            "web/index.html: other scripts or styles than the two tags; put them in web/js/ and web/viewer.css"
                .into(),
        );
    }
}

fn count_ignore_case(haystack: &str, needle: &str) -> usize {
    haystack
        .to_ascii_lowercase()
        .matches(&needle.to_ascii_lowercase())
        .count()
}

fn contains_ignore_case(haystack: &str, needle: &str) -> bool {
    count_ignore_case(haystack, needle) > 0
}

/// What the bundler needs to know of one module.
#[derive(Debug, Default)]
struct Module {
    imports: Vec<Import>,
    exports: BTreeSet<String>,
    /// Top-level names with the line that declares them.
    declared: Vec<(String, usize)>,
    /// Byte ranges to cut from the source: import lines and `export ` keywords.
    cuts: Vec<Range<usize>>,
}

#[derive(Debug)]
struct Import {
    names: Vec<String>,
    file: String,
    line: usize,
}

impl Module {
    fn bundled(&self, source: &str) -> String {
        let mut cuts = self.cuts.clone();
        cuts.sort_by_key(|r| r.start);
        let mut out = String::with_capacity(source.len());
        let mut at = 0;
        for cut in cuts {
            out.push_str(&source[at..cut.start]);
            at = cut.end;
        }
        out.push_str(&source[at..]);
        out
    }
}

/// Every imported file exists and exports what is imported from it.
fn check_imports(modules: &BTreeMap<String, Module>, errors: &mut Vec<String>) {
    for (name, module) in modules {
        let mut seen = BTreeSet::new();
        for import in &module.imports {
            let at = format!("web/js/{name}:{}", import.line);
            let Some(target) = modules.get(&import.file) else {
                errors.push(format!(
                    "{at}: imports './{}', which is not in web/js/",
                    import.file
                ));
                continue;
            };
            for n in &import.names {
                if !target.exports.contains(n) {
                    errors.push(format!(
                        "{at}: web/js/{} does not export `{n}`",
                        import.file
                    ));
                }
                if !seen.insert(n.clone()) {
                    errors.push(format!("{at}: `{n}` is imported twice"));
                }
            }
        }
    }
}

/// The modules reachable from the entry, each after the ones it imports.
fn dependency_order(modules: &BTreeMap<String, Module>) -> Result<Vec<String>, String> {
    fn visit(
        name: &str,
        modules: &BTreeMap<String, Module>,
        path: &mut Vec<String>,
        order: &mut Vec<String>,
    ) -> Result<(), String> {
        if order.iter().any(|n| n == name) {
            return Ok(());
        }
        if let Some(at) = path.iter().position(|n| n == name) {
            let cycle: Vec<&str> = path[at..]
                .iter()
                .map(String::as_str)
                .chain([name])
                .collect();
            return Err(format!("web/js/: import cycle {}", cycle.join(" -> ")));
        }
        let Some(module) = modules.get(name) else {
            return Err(format!("web/js/{name}: missing (the page's entry module)"));
        };
        path.push(name.to_string());
        for import in &module.imports {
            visit(&import.file, modules, path, order)?;
        }
        path.pop();
        order.push(name.to_string());
        Ok(())
    }

    let mut order = Vec::new();
    visit(ENTRY, modules, &mut Vec::new(), &mut order)?;
    let unused: Vec<&str> = modules
        .keys()
        .filter(|n| !order.contains(n))
        .map(String::as_str)
        .collect();
    if !unused.is_empty() {
        return Err(format!(
            "web/js/: not imported by {ENTRY} or any module it imports: {}",
            unused.join(", ")
        ));
    }
    Ok(order)
}

/// In the bundle all modules share one scope: a top-level name may be declared once only.
fn check_top_level_names(
    modules: &BTreeMap<String, Module>,
    order: &[String],
    errors: &mut Vec<String>,
) {
    let mut first: BTreeMap<&str, (&str, usize)> = BTreeMap::new();
    for name in order {
        for (declared, line) in &modules[name].declared {
            if let Some((other, other_line)) = first.get(declared.as_str()) {
                errors.push(format!(
                    "web/js/{name}:{line}: `{declared}` is already declared at top level in \
                     web/js/{other}:{other_line}; in the bundle both share one scope, rename one"
                ));
            } else {
                first.insert(declared, (name, *line));
            }
        }
    }
}

// ---- The JavaScript scanner -------------------------------------------------------------------
//
// Just enough of a tokenizer to tell code from comments, strings, template literals and regular
// expressions, and to know the bracket depth of every token: the import and export statements
// and the declarations that matter are those at depth 0.

#[derive(Debug, Clone, Copy, PartialEq)]
enum Tok<'a> {
    Ident(&'a str),
    Punct(u8),
    /// A string, number, template piece or regular expression.
    Literal,
}

#[derive(Debug, Clone, Copy)]
struct Token<'a> {
    tok: Tok<'a>,
    start: usize,
    line: usize,
    /// Open brackets around the token (for a closing bracket: around the pair).
    depth: usize,
}

impl<'a> Token<'a> {
    fn new(tok: Tok<'a>, start: usize, line: usize, depth: usize) -> Self {
        Token {
            tok,
            start,
            line,
            depth,
        }
    }
}

const REGEX_AFTER_KEYWORDS: &[&str] = &[
    "return",
    "typeof",
    "instanceof",
    "in",
    "of",
    "new",
    "delete",
    "void",
    "throw",
    "case",
    "do",
    "else",
    "yield",
    "await",
];

fn is_ident_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_' || b == b'$'
}

fn is_ident_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'$'
}

fn tokenize(src: &str) -> Result<Vec<Token<'_>>, String> {
    let bytes = src.as_bytes();
    let mut tokens: Vec<Token> = Vec::new();
    // Open brackets: ( [ { and `$` for the `${` of a template literal.
    let mut stack: Vec<u8> = Vec::new();
    let mut i = 0;
    let mut line = 1;
    // Inside a template literal (after its opening backtick or a `}` that ends a `${`).
    let mut in_template = false;

    while i < bytes.len() {
        if in_template {
            let start_line = line;
            loop {
                match bytes.get(i) {
                    None => return Err(format!("{start_line}: unterminated template literal")),
                    Some(b'\\') => i += 2,
                    Some(b'`') => {
                        i += 1;
                        in_template = false;
                        break;
                    }
                    Some(b'$') if bytes.get(i + 1) == Some(&b'{') => {
                        i += 2;
                        stack.push(b'$');
                        in_template = false;
                        break;
                    }
                    Some(b) => {
                        if *b == b'\n' {
                            line += 1;
                        }
                        i += 1;
                    }
                }
            }
            continue;
        }

        let b = bytes[i];
        let start = i;
        let depth = stack.len();
        match b {
            b'\n' => {
                line += 1;
                i += 1;
            }
            b' ' | b'\t' | b'\r' => i += 1,
            b'/' if bytes.get(i + 1) == Some(&b'/') => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                let Some(len) = src[i + 2..].find("*/") else {
                    return Err(format!("{line}: unterminated comment"));
                };
                line += src[i..i + 2 + len].matches('\n').count();
                i += len + 4;
            }
            b'/' if regex_allowed(tokens.last()) => {
                i += 1;
                let mut in_class = false;
                loop {
                    match bytes.get(i) {
                        None | Some(b'\n') => {
                            return Err(format!("{line}: unterminated regular expression"));
                        }
                        Some(b'\\') => i += 2,
                        Some(b'[') => {
                            in_class = true;
                            i += 1;
                        }
                        Some(b']') => {
                            in_class = false;
                            i += 1;
                        }
                        Some(b'/') if !in_class => {
                            i += 1;
                            break;
                        }
                        Some(_) => i += 1,
                    }
                }
                while i < bytes.len() && is_ident_char(bytes[i]) {
                    i += 1;
                }
                tokens.push(Token::new(Tok::Literal, start, line, depth));
            }
            b'\'' | b'"' => {
                i += 1;
                loop {
                    match bytes.get(i) {
                        None | Some(b'\n') => return Err(format!("{line}: unterminated string")),
                        Some(b'\\') => i += 2,
                        Some(q) if *q == b => {
                            i += 1;
                            break;
                        }
                        Some(_) => i += 1,
                    }
                }
                tokens.push(Token::new(Tok::Literal, start, line, depth));
            }
            b'`' => {
                i += 1;
                in_template = true;
                tokens.push(Token::new(Tok::Literal, start, line, depth));
            }
            b'0'..=b'9' => {
                while i < bytes.len() && (is_ident_char(bytes[i]) || bytes[i] == b'.') {
                    i += 1;
                }
                tokens.push(Token::new(Tok::Literal, start, line, depth));
            }
            _ if is_ident_start(b) => {
                while i < bytes.len() && is_ident_char(bytes[i]) {
                    i += 1;
                }
                tokens.push(Token::new(Tok::Ident(&src[start..i]), start, line, depth));
            }
            b'(' | b'[' | b'{' => {
                stack.push(b);
                i += 1;
                tokens.push(Token::new(Tok::Punct(b), start, line, depth));
            }
            b')' | b']' | b'}' => {
                let open = match b {
                    b')' => b'(',
                    b']' => b'[',
                    _ => b'{',
                };
                i += 1;
                match stack.pop() {
                    Some(b'$') if b == b'}' => {
                        // The end of a `${…}`: back into the template literal.
                        in_template = true;
                        tokens.push(Token::new(Tok::Literal, start, line, depth - 1));
                    }
                    Some(o) if o == open => {
                        tokens.push(Token::new(Tok::Punct(b), start, line, depth - 1));
                    }
                    _ => return Err(format!("{line}: unbalanced `{}`", b as char)),
                }
            }
            _ => {
                // Other punctuation, one byte at a time (and any non-ASCII byte outside
                // strings and comments, which the browser will judge).
                i += 1;
                tokens.push(Token::new(Tok::Punct(b), start, line, depth));
            }
        }
    }
    if in_template {
        return Err(format!("{line}: unterminated template literal"));
    }
    if let Some(open) = stack.last() {
        return Err(format!(
            "{line}: `{}` not closed by the end of the file",
            *open as char
        ));
    }
    Ok(tokens)
}

/// Whether a `/` after `prev` starts a regular expression rather than being a division.
fn regex_allowed(prev: Option<&Token>) -> bool {
    match prev.map(|t| t.tok) {
        None => true,
        Some(Tok::Ident(word)) => REGEX_AFTER_KEYWORDS.contains(&word),
        Some(Tok::Literal) => false,
        Some(Tok::Punct(p)) => !matches!(p, b')' | b']' | b'}'),
    }
}

/// The imports, exports, top-level declarations and cuts of one module.
fn scan_module(src: &str) -> Result<Module, Vec<String>> {
    let tokens = tokenize(src).map_err(|e| vec![e])?;
    let mut module = Module::default();
    let mut errors = Vec::new();

    // Any `import` or `export` that is not a statement of its own at the top.
    let statement_start = top_level_statement_starts(&tokens);
    for (k, t) in tokens.iter().enumerate() {
        let Tok::Ident(word @ ("import" | "export")) = t.tok else {
            continue;
        };
        // `x.import` and `{ import: … }` are names, not the keyword.
        let property = (k > 0 && tokens[k - 1].tok == Tok::Punct(b'.'))
            || tokens.get(k + 1).is_some_and(|n| n.tok == Tok::Punct(b':'));
        if !property && !statement_start[k] {
            errors.push(format!(
                "{}: `{word}` only as a statement of its own at the top of the module \
                 (no dynamic import() or import.meta)",
                t.line
            ));
        }
    }

    let mut k = 0;
    // Inside `const`/`let` at the top: a `,` there starts another declarator.
    let mut in_declaration = false;
    let mut exporting = false;
    let mut last_import_cut = None;
    while k < tokens.len() {
        let t = tokens[k];
        if t.depth != 0 {
            k += 1;
            continue;
        }
        let next = |n: usize| tokens.get(k + n).map(|t| t.tok);
        match t.tok {
            Tok::Ident("import") if statement_start[k] => {
                match parse_import(src, t.start, t.line) {
                    Ok((import, cut)) => {
                        while k < tokens.len() && tokens[k].start < cut.end {
                            k += 1;
                        }
                        module.imports.push(import);
                        last_import_cut = Some(module.cuts.len());
                        module.cuts.push(cut);
                    }
                    Err(e) => {
                        errors.push(e);
                        k += 1;
                    }
                }
                continue;
            }
            Tok::Ident("export") if statement_start[k] => match next(1) {
                Some(Tok::Ident("function" | "async" | "class" | "const")) => {
                    module.cuts.push(t.start..tokens[k + 1].start);
                    exporting = true;
                }
                Some(Tok::Ident("let" | "var")) => errors.push(format!(
                    "{}: `export let`/`export var`: export a function, class or const \
                         (keep mutable state inside the module)",
                    t.line
                )),
                _ => errors.push(format!(
                    "{}: only `export function`, `export async function`, `export class` \
                         and `export const` (no default export, no export lists)",
                    t.line
                )),
            },
            Tok::Ident(kw @ ("function" | "async" | "class")) if statement_start[k] => {
                let mut n = 1;
                if kw == "async" {
                    if next(1) != Some(Tok::Ident("function")) {
                        k += 1;
                        continue;
                    }
                    n += 1;
                }
                if kw != "class" && next(n) == Some(Tok::Punct(b'*')) {
                    n += 1;
                }
                match next(n) {
                    Some(Tok::Ident(name)) => {
                        declare(&mut module, name, t.line, exporting);
                    }
                    _ => errors.push(format!("{}: a top-level `{kw}` without a name", t.line)),
                }
                exporting = false;
                in_declaration = false;
                k += n + 1;
                continue;
            }
            Tok::Ident(kw @ ("const" | "let" | "var")) if statement_start[k] => {
                if kw == "var" {
                    errors.push(format!(
                        "{}: `var` at the top level; use const or let",
                        t.line
                    ));
                }
                match next(1) {
                    Some(Tok::Ident(name)) => declare(&mut module, name, t.line, exporting),
                    _ => errors.push(format!(
                        "{}: destructuring at the top level; declare each name on its own",
                        t.line
                    )),
                }
                in_declaration = true;
                k += 2;
                continue;
            }
            Tok::Punct(b',') if in_declaration => {
                if let Some(Tok::Ident(name)) = next(1) {
                    declare(&mut module, name, tokens[k + 1].line, exporting);
                    k += 2;
                    continue;
                }
            }
            Tok::Punct(b';') => {
                in_declaration = false;
                exporting = false;
            }
            _ => {}
        }
        k += 1;
    }

    // The blank line after the last import goes with it, so that none is left doubled.
    if let Some(cut) = last_import_cut.map(|at| &mut module.cuts[at])
        && src[cut.end..].starts_with('\n')
    {
        cut.end += 1;
    }

    if errors.is_empty() {
        Ok(module)
    } else {
        Err(errors)
    }
}

fn declare(module: &mut Module, name: &str, line: usize, exported: bool) {
    module.declared.push((name.to_string(), line));
    if exported {
        module.exports.insert(name.to_string());
    }
}

/// For each token: whether it begins a statement at the top level (after nothing, a `;`, the
/// `}` of a top-level block, or an `export`).
fn top_level_statement_starts(tokens: &[Token]) -> Vec<bool> {
    let mut starts = Vec::with_capacity(tokens.len());
    let mut at_start = true;
    for t in tokens {
        starts.push(t.depth == 0 && at_start);
        if t.depth == 0 {
            at_start = matches!(
                t.tok,
                Tok::Punct(b';') | Tok::Punct(b'}') | Tok::Ident("export")
            ) || (matches!(t.tok, Tok::Ident("async")) && at_start);
        }
    }
    starts
}

/// `import { a, b } from './file.js';`, alone on its line from `start`. Returns the import and
/// the byte range of its whole line.
fn parse_import(src: &str, start: usize, line: usize) -> Result<(Import, Range<usize>), String> {
    let line_start = src[..start].rfind('\n').map_or(0, |p| p + 1);
    let line_end = src[start..].find('\n').map_or(src.len(), |p| start + p + 1);
    let shape = "write it as `import { a, b } from './file.js';` on one line";
    let fail = |what: &str| Err(format!("{line}: {what}; {shape}"));

    if !src[line_start..start].trim().is_empty() {
        return fail("an import must start its line");
    }
    let text = src[start..line_end].trim_end();
    let rest = text["import".len()..].trim_start();
    if rest.starts_with('*') {
        return fail("namespace import (`import * as`)");
    }
    if rest.starts_with('\'') || rest.starts_with('"') {
        return fail("side-effect import (no names)");
    }
    let Some(rest) = rest.strip_prefix('{') else {
        return fail("default import");
    };
    let Some((list, rest)) = rest.split_once('}') else {
        return fail("an import must be on one line");
    };
    let mut names = Vec::new();
    for item in list.split(',').map(str::trim) {
        if item.is_empty() {
            continue;
        }
        if item.split_whitespace().nth(1) == Some("as") {
            return fail(&format!("renamed import `{item}`"));
        }
        if !item.bytes().next().is_some_and(is_ident_start) || !item.bytes().all(is_ident_char) {
            return fail(&format!("`{item}` is not a name"));
        }
        names.push(item.to_string());
    }
    if names.is_empty() {
        return fail("an import of nothing");
    }
    let Some(rest) = rest.trim_start().strip_prefix("from") else {
        return fail("`from` missing");
    };
    let rest = rest.trim_start();
    let quote = rest.chars().next().filter(|c| *c == '\'' || *c == '"');
    let Some((spec, tail)) = quote.and_then(|q| rest[1..].split_once(q)) else {
        return fail("the file must be a quoted './name.js'");
    };
    if tail != ";" {
        return fail("end it with `;` and nothing after it on the line");
    }
    let Some(file) = spec.strip_prefix("./") else {
        return fail(&format!(
            "'{spec}' is not a file next to the module ('./name.js')"
        ));
    };
    let plain = file
        .bytes()
        .all(|b| is_ident_char(b) || b == b'-' || b == b'.');
    if !plain || !file.ends_with(".js") || file.starts_with('.') {
        return fail(&format!(
            "'{spec}' is not a module in web/js/ ('./name.js')"
        ));
    }
    Ok((
        Import {
            names,
            file: file.to_string(),
            line,
        },
        line_start..line_end,
    ))
}
