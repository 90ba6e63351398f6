//! The source of `src/` as the architecture checks see it: every file the compiler reaches from
//! a crate root through its `mod` declarations, parsed with `syn`, with what the checks ask
//! about collected per file (string literals, calls, spawns, paths).
//!
//! Items under `#[cfg(test)]` (unit tests and test modules, with the files they declare, and
//! test-only methods) are left out: the invariants are about the service, and a test may build
//! a store by hand. A `#[cfg(test)]` statement inside a function is still scanned, which errs on
//! the strict side.
//! Attributes are left out too: a doc comment may name a statement, and an `#[error(..)]`
//! message is not sent to PostgreSQL. syn does not parse a macro's body into expressions (each
//! macro has its own grammar: `format!`, `tokio::select!`), so a macro's tokens are scanned
//! instead: a literal token is a string literal, `name(` and `a::name` are calls, `.name(` is a
//! method call. The syntax does not tell a method receiver's type, so methods are known by
//! name.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use proc_macro2::{Delimiter, Literal, TokenStream, TokenTree};
use syn::spanned::Spanned;
use syn::visit::{self, Visit};

/// Functions that start a task or a thread when called (or passed as a value, as in
/// `.map(tokio::spawn)`), known by the last segment of their path: `tokio::spawn`,
/// `tokio::task::spawn`, `tokio::task::spawn_blocking`, `tokio::task::spawn_local`,
/// `std::thread::spawn`, `thread::spawn`, `actix_web::rt::spawn`, and the same imported bare.
const SPAWN_FUNCTIONS: &[&str] = &["spawn", "spawn_blocking", "spawn_local"];

/// Methods that start a task or a thread: `JoinSet`'s and `TaskTracker`'s, a runtime
/// `Handle`'s, and `tokio::task::Builder`'s or `std::thread::Builder`'s `spawn`. The receiver's
/// type is not in the syntax, so the name decides, with two exceptions the arguments show: the
/// shutdown manager's own `spawn(Component::.., task)` is the sanctioned way, and a `spawn()`
/// without arguments is `Command::spawn`, which starts a process, not a task.
const SPAWN_METHODS: &[&str] = &[
    "spawn",
    "spawn_blocking",
    "spawn_local",
    "spawn_on",
    "spawn_local_on",
    "spawn_blocking_on",
];

/// Where something was found in a file, and what.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct Found {
    pub(super) line: usize,
    pub(super) text: String,
}

/// A `mod name;` declaration, which brings in another file.
#[derive(Debug)]
struct ModuleDeclaration {
    /// The inline modules (`mod a { .. }`) around the declaration, outermost first.
    inline_path: Vec<String>,
    name: String,
}

/// What a parsed file holds, tests and attributes aside.
#[derive(Debug, Default)]
pub(super) struct FileContents {
    /// Every string and byte string literal, in code and in macro bodies.
    pub(super) string_literals: Vec<Found>,
    /// Every function or method called, by the last segment of its path or by its name, and
    /// every function named with a path (`MemoryStore::evict`) as a value.
    pub(super) names_called: Vec<Found>,
    /// Every task or thread started, as the call was written (`tokio::spawn`, `.spawn(..)`).
    pub(super) spawns: Vec<Found>,
    /// Every path of two or more segments named in code and `use` declarations.
    pub(super) paths: Vec<Found>,
    /// Every macro invoked, by the last segment of its path (`warn` for `tracing::warn!`),
    /// also inside other macros' bodies.
    pub(super) macros: Vec<Found>,
    /// The files this one brings in as code.
    modules: Vec<ModuleDeclaration>,
    /// The files this one brings in only for tests (`#[cfg(test)] mod tests;`).
    test_modules: Vec<ModuleDeclaration>,
    /// How many lines the `#[cfg(test)]` items take, their attributes and doc comments included.
    pub(super) n_test_lines: usize,
}

/// Parses one file's text and collects what the checks need.
pub(super) fn scan(text: &str) -> syn::Result<FileContents> {
    let file = syn::parse_file(text)?;
    let mut scanner = Scanner::default();
    scanner.visit_file(&file);
    Ok(scanner.contents)
}

#[derive(Default)]
struct Scanner {
    contents: FileContents,
    inline_path: Vec<String>,
}

/// Whether an item is compiled only for tests: `#[cfg(test)]` or `#[cfg(all(test, ..))]`.
fn is_test_only(attributes: &[syn::Attribute]) -> bool {
    attributes.iter().any(|attribute| {
        let syn::Meta::List(list) = &attribute.meta else {
            return false;
        };
        if !list.path.is_ident("cfg") {
            return false;
        }
        let mut tokens = list.tokens.clone().into_iter();
        match (tokens.next(), tokens.next()) {
            (Some(TokenTree::Ident(ident)), None) => ident == "test",
            (Some(TokenTree::Ident(ident)), Some(TokenTree::Group(group))) if ident == "all" => {
                group
                    .stream()
                    .into_iter()
                    .any(|token| matches!(token, TokenTree::Ident(ident) if ident == "test"))
            }
            _ => false,
        }
    })
}

/// An item's attributes (syn has no accessor common to every kind of item).
fn item_attributes(item: &syn::Item) -> &[syn::Attribute] {
    match item {
        syn::Item::Const(item) => &item.attrs,
        syn::Item::Enum(item) => &item.attrs,
        syn::Item::ExternCrate(item) => &item.attrs,
        syn::Item::Fn(item) => &item.attrs,
        syn::Item::ForeignMod(item) => &item.attrs,
        syn::Item::Impl(item) => &item.attrs,
        syn::Item::Macro(item) => &item.attrs,
        syn::Item::Mod(item) => &item.attrs,
        syn::Item::Static(item) => &item.attrs,
        syn::Item::Struct(item) => &item.attrs,
        syn::Item::Trait(item) => &item.attrs,
        syn::Item::TraitAlias(item) => &item.attrs,
        syn::Item::Type(item) => &item.attrs,
        syn::Item::Union(item) => &item.attrs,
        syn::Item::Use(item) => &item.attrs,
        _ => &[],
    }
}

/// How many lines a node takes in its file, attributes included.
fn n_lines(node: &impl Spanned) -> usize {
    let span = node.span();
    span.end().line + 1 - span.start().line
}

/// A path as written, `tokio::task::spawn`.
fn path_text(path: &syn::Path) -> String {
    let segments: Vec<String> = path
        .segments
        .iter()
        .map(|segment| segment.ident.to_string())
        .collect();
    segments.join("::")
}

/// Whether a call's first argument names a shutdown `Component` (`Component::Sweeper`,
/// `Component::Reader(index)`): the shutdown manager's `spawn` and `spawn_finite` take one.
fn names_a_component(argument: Option<&syn::Expr>) -> bool {
    let path = match argument {
        Some(syn::Expr::Path(path)) => &path.path,
        Some(syn::Expr::Call(call)) => match &*call.func {
            syn::Expr::Path(path) => &path.path,
            _ => return false,
        },
        _ => return false,
    };
    path.segments
        .first()
        .is_some_and(|segment| segment.ident == "Component")
}

/// The same, for the tokens of a macro call's arguments.
fn tokens_name_a_component(arguments: &TokenStream) -> bool {
    matches!(arguments.clone().into_iter().next(), Some(TokenTree::Ident(ident)) if ident == "Component")
}

fn is_punct(token: Option<&TokenTree>, wanted: char) -> bool {
    matches!(token, Some(TokenTree::Punct(punct)) if punct.as_char() == wanted)
}

impl Scanner {
    fn note_path(&mut self, path: &syn::Path, called: bool) {
        let Some(last) = path.segments.last() else {
            return;
        };
        let line = last.ident.span().start().line;
        let name = last.ident.to_string();
        if called || path.segments.len() > 1 {
            self.contents.names_called.push(Found {
                line,
                text: name.clone(),
            });
        }
        if SPAWN_FUNCTIONS.contains(&name.as_str()) {
            self.contents.spawns.push(Found {
                line,
                text: path_text(path),
            });
        }
    }

    fn note_literal_token(&mut self, literal: &Literal) {
        let line = literal.span().start().line;
        match syn::Lit::new(literal.clone()) {
            syn::Lit::Str(string) => self.contents.string_literals.push(Found {
                line,
                text: string.value(),
            }),
            syn::Lit::ByteStr(bytes) => self.contents.string_literals.push(Found {
                line,
                text: String::from_utf8_lossy(&bytes.value()).into_owned(),
            }),
            _ => {}
        }
    }

    /// Scans a macro's body, which syn leaves as tokens, for literals, calls and spawns.
    fn scan_tokens(&mut self, tokens: TokenStream) {
        let trees: Vec<TokenTree> = tokens.into_iter().collect();
        for (index, tree) in trees.iter().enumerate() {
            match tree {
                TokenTree::Group(group) => self.scan_tokens(group.stream()),
                TokenTree::Literal(literal) => self.note_literal_token(literal),
                TokenTree::Punct(_) => {}
                TokenTree::Ident(ident) => {
                    let name = ident.to_string();
                    let line = ident.span().start().line;
                    let before = |back: usize| index.checked_sub(back).and_then(|at| trees.get(at));
                    let after_dot = is_punct(before(1), '.');
                    let after_path_separator = is_punct(before(1), ':') && is_punct(before(2), ':');
                    if is_punct(trees.get(index + 1), '!') {
                        self.contents.macros.push(Found {
                            line,
                            text: name.clone(),
                        });
                    }
                    let arguments = match trees.get(index + 1) {
                        Some(TokenTree::Group(group))
                            if group.delimiter() == Delimiter::Parenthesis =>
                        {
                            Some(group.stream())
                        }
                        _ => None,
                    };
                    if arguments.is_some() || after_path_separator {
                        self.contents.names_called.push(Found {
                            line,
                            text: name.clone(),
                        });
                    }
                    if after_dot {
                        let Some(arguments) = arguments else {
                            continue;
                        };
                        if SPAWN_METHODS.contains(&name.as_str())
                            && !arguments.is_empty()
                            && !tokens_name_a_component(&arguments)
                        {
                            self.contents.spawns.push(Found {
                                line,
                                text: format!(".{name}(..)"),
                            });
                        }
                    } else if SPAWN_FUNCTIONS.contains(&name.as_str())
                        && (arguments.is_some() || after_path_separator)
                    {
                        // The path as written: `tokio::task::spawn`.
                        let mut segments = vec![name];
                        let mut at = index;
                        while at >= 3
                            && is_punct(trees.get(at - 1), ':')
                            && is_punct(trees.get(at - 2), ':')
                        {
                            let Some(TokenTree::Ident(segment)) = trees.get(at - 3) else {
                                break;
                            };
                            segments.insert(0, segment.to_string());
                            at -= 3;
                        }
                        self.contents.spawns.push(Found {
                            line,
                            text: segments.join("::"),
                        });
                    }
                }
            }
        }
    }

    /// Flattens a `use` tree into the paths it names.
    fn note_use_tree(&mut self, prefix: &mut Vec<String>, tree: &syn::UseTree) {
        let mut note = |prefix: &Vec<String>, last: &syn::Ident| {
            let mut segments = prefix.clone();
            segments.push(last.to_string());
            self.contents.paths.push(Found {
                line: last.span().start().line,
                text: segments.join("::"),
            });
        };
        match tree {
            syn::UseTree::Path(path) => {
                prefix.push(path.ident.to_string());
                self.note_use_tree(prefix, &path.tree);
                prefix.pop();
            }
            syn::UseTree::Name(name) => note(prefix, &name.ident),
            syn::UseTree::Rename(rename) => {
                note(prefix, &rename.ident);
                // A spawn function imported under another name would hide its calls.
                if SPAWN_FUNCTIONS.contains(&rename.ident.to_string().as_str()) {
                    self.contents.spawns.push(Found {
                        line: rename.ident.span().start().line,
                        text: format!("{} as {}", rename.ident, rename.rename),
                    });
                }
            }
            syn::UseTree::Glob(glob) => self.contents.paths.push(Found {
                line: glob.star_token.span.start().line,
                text: format!("{}::*", prefix.join("::")),
            }),
            syn::UseTree::Group(group) => {
                for tree in &group.items {
                    self.note_use_tree(prefix, tree);
                }
            }
        }
    }
}

impl<'ast> Visit<'ast> for Scanner {
    fn visit_attribute(&mut self, _attribute: &'ast syn::Attribute) {}

    fn visit_item(&mut self, item: &'ast syn::Item) {
        if is_test_only(item_attributes(item)) {
            self.contents.n_test_lines += n_lines(item);
            if let syn::Item::Mod(module) = item {
                if module.content.is_none() {
                    self.contents.test_modules.push(ModuleDeclaration {
                        inline_path: self.inline_path.clone(),
                        name: module.ident.to_string(),
                    });
                }
            }
            return;
        }
        visit::visit_item(self, item);
    }

    fn visit_item_mod(&mut self, module: &'ast syn::ItemMod) {
        let has_path_attribute = module
            .attrs
            .iter()
            .any(|attribute| attribute.path().is_ident("path"));
        assert!(
            !has_path_attribute,
            "mod {} has a #[path] attribute, which this checker does not follow yet",
            module.ident
        );
        match &module.content {
            None => self.contents.modules.push(ModuleDeclaration {
                inline_path: self.inline_path.clone(),
                name: module.ident.to_string(),
            }),
            Some((_, items)) => {
                self.inline_path.push(module.ident.to_string());
                for item in items {
                    self.visit_item(item);
                }
                self.inline_path.pop();
            }
        }
    }

    fn visit_impl_item(&mut self, item: &'ast syn::ImplItem) {
        let attributes = match item {
            syn::ImplItem::Const(item) => &item.attrs,
            syn::ImplItem::Fn(item) => &item.attrs,
            syn::ImplItem::Type(item) => &item.attrs,
            syn::ImplItem::Macro(item) => &item.attrs,
            _ => return visit::visit_impl_item(self, item),
        };
        if is_test_only(attributes) {
            self.contents.n_test_lines += n_lines(item);
            return;
        }
        visit::visit_impl_item(self, item);
    }

    fn visit_trait_item(&mut self, item: &'ast syn::TraitItem) {
        let attributes = match item {
            syn::TraitItem::Const(item) => &item.attrs,
            syn::TraitItem::Fn(item) => &item.attrs,
            syn::TraitItem::Type(item) => &item.attrs,
            syn::TraitItem::Macro(item) => &item.attrs,
            _ => return visit::visit_trait_item(self, item),
        };
        if is_test_only(attributes) {
            self.contents.n_test_lines += n_lines(item);
            return;
        }
        visit::visit_trait_item(self, item);
    }

    fn visit_lit_str(&mut self, literal: &'ast syn::LitStr) {
        self.contents.string_literals.push(Found {
            line: literal.span().start().line,
            text: literal.value(),
        });
    }

    fn visit_lit_byte_str(&mut self, literal: &'ast syn::LitByteStr) {
        self.contents.string_literals.push(Found {
            line: literal.span().start().line,
            text: String::from_utf8_lossy(&literal.value()).into_owned(),
        });
    }

    fn visit_expr_call(&mut self, call: &'ast syn::ExprCall) {
        let syn::Expr::Path(function) = &*call.func else {
            return visit::visit_expr_call(self, call);
        };
        self.note_path(&function.path, true);
        self.visit_path(&function.path);
        for argument in &call.args {
            self.visit_expr(argument);
        }
    }

    fn visit_expr_path(&mut self, path: &'ast syn::ExprPath) {
        self.note_path(&path.path, false);
        visit::visit_expr_path(self, path);
    }

    fn visit_expr_method_call(&mut self, call: &'ast syn::ExprMethodCall) {
        let name = call.method.to_string();
        let line = call.method.span().start().line;
        if SPAWN_METHODS.contains(&name.as_str())
            && !call.args.is_empty()
            && !names_a_component(call.args.first())
        {
            self.contents.spawns.push(Found {
                line,
                text: format!(".{name}(..)"),
            });
        }
        self.contents.names_called.push(Found { line, text: name });
        visit::visit_expr_method_call(self, call);
    }

    fn visit_path(&mut self, path: &'ast syn::Path) {
        if path.segments.len() > 1 {
            self.contents.paths.push(Found {
                line: path.span().start().line,
                text: path_text(path),
            });
        }
        visit::visit_path(self, path);
    }

    fn visit_item_use(&mut self, item: &'ast syn::ItemUse) {
        self.note_use_tree(&mut Vec::new(), &item.tree);
    }

    fn visit_macro(&mut self, mac: &'ast syn::Macro) {
        if let Some(last) = mac.path.segments.last() {
            self.contents.macros.push(Found {
                line: last.ident.span().start().line,
                text: last.ident.to_string(),
            });
        }
        self.visit_path(&mac.path);
        self.scan_tokens(mac.tokens.clone());
    }
}

/// A file of `src/`, parsed.
pub(super) struct SourceFile {
    /// From the crate root, with `/` separators.
    pub(super) path: String,
    pub(super) n_lines: usize,
    pub(super) contents: FileContents,
}

/// Every file of `src/` that is compiled outside tests, parsed once for all the checks.
pub(super) fn source_tree() -> &'static [SourceFile] {
    &parsed_source_tree().files
}

/// The `.rs` files under `src/` that no crate root reaches through `mod` declarations, neither
/// as code nor as a test module: the checks cannot see them.
pub(super) fn unreached_source_files() -> &'static [String] {
    &parsed_source_tree().unreached
}

struct SourceTree {
    files: Vec<SourceFile>,
    unreached: Vec<String>,
}

fn parsed_source_tree() -> &'static SourceTree {
    static SOURCE_TREE: OnceLock<SourceTree> = OnceLock::new();
    SOURCE_TREE.get_or_init(parse_source_tree)
}

/// Every file of `src/` that is compiled outside tests, reached from the crate roots through
/// their `mod` declarations, and the `.rs` files that are reached neither as code nor as a
/// test module.
fn parse_source_tree() -> SourceTree {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let src = root.join("src");
    let mut crate_roots = vec![src.join("lib.rs"), src.join("main.rs")];
    if let Ok(entries) = std::fs::read_dir(src.join("bin")) {
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                crate_roots.push(path.join("main.rs"));
            } else if path.extension().is_some_and(|ext| ext == "rs") {
                crate_roots.push(path);
            }
        }
    }

    let mut parsed = Vec::new();
    let mut reached_for_tests = BTreeSet::new();
    let mut test_folders = Vec::new();
    let mut to_parse: Vec<(PathBuf, bool)> = crate_roots
        .into_iter()
        .filter(|path| path.is_file())
        .map(|path| (path, true))
        .collect();
    while let Some((path, owns_its_folder)) = to_parse.pop() {
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|error| panic!("cannot read {}: {error}", path.display()));
        let contents =
            scan(&text).unwrap_or_else(|error| panic!("cannot parse {}: {error}", path.display()));
        let folder = match (owns_its_folder, path.parent(), path.file_stem()) {
            (true, Some(parent), _) => parent.to_path_buf(),
            (false, Some(parent), Some(stem)) => parent.join(stem),
            _ => panic!("{} has no folder", path.display()),
        };
        for module in &contents.modules {
            to_parse.push(module_file(&folder, module, &path));
        }
        for module in &contents.test_modules {
            // A test module's own submodules are tests too: its folder is left out whole.
            let (file, owns_its_folder) = module_file(&folder, module, &path);
            let test_folder = match (owns_its_folder, file.parent()) {
                (true, Some(parent)) => parent.to_path_buf(),
                _ => file.with_extension(""),
            };
            reached_for_tests.insert(file);
            test_folders.push(test_folder);
        }
        parsed.push(SourceFile {
            path: relative(&path),
            n_lines: text.lines().count(),
            contents,
        });
    }

    let reached: BTreeSet<String> = parsed.iter().map(|file| file.path.clone()).collect();
    let unreached: Vec<String> = all_rust_files(&src)
        .into_iter()
        .filter(|path| !reached_for_tests.contains(path))
        .filter(|path| !test_folders.iter().any(|folder| path.starts_with(folder)))
        .map(|path| relative(&path))
        .filter(|path| !reached.contains(path))
        .collect();
    parsed.sort_by(|a, b| a.path.cmp(&b.path));
    SourceTree {
        files: parsed,
        unreached,
    }
}

/// The file a `mod name;` declaration brings in: `name.rs` or `name/mod.rs` in the declaring
/// file's folder (inline modules add a folder each), and whether it owns a folder itself.
fn module_file(folder: &Path, module: &ModuleDeclaration, declared_in: &Path) -> (PathBuf, bool) {
    let mut folder = folder.to_path_buf();
    for inline in &module.inline_path {
        folder.push(inline);
    }
    let as_file = folder.join(format!("{}.rs", module.name));
    let as_folder = folder.join(&module.name).join("mod.rs");
    match (as_file.is_file(), as_folder.is_file()) {
        (true, false) => (as_file, false),
        (false, true) => (as_folder, true),
        _ => panic!(
            "mod {} in {}: expected exactly one of {} and {}",
            module.name,
            declared_in.display(),
            as_file.display(),
            as_folder.display()
        ),
    }
}

fn all_rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let entries = std::fs::read_dir(dir)
        .unwrap_or_else(|error| panic!("cannot read {}: {error}", dir.display()));
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(all_rust_files(&path));
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            out.push(path);
        }
    }
    out
}

/// The file's path from the crate root, with `/` separators.
fn relative(path: &Path) -> String {
    path.strip_prefix(env!("CARGO_MANIFEST_DIR"))
        .unwrap_or(path)
        .to_string_lossy()
        .replace('\\', "/")
}
