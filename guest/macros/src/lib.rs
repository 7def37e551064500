//! Route patterns compiled when the module is built.
//!
//! `snow_guest::app!` hands each pattern to [`pattern!`]. A string literal
//! is parsed and compiled to a Thompson NFA here, and the module receives
//! the NFA's states as a table of numbers: the module then carries only the
//! search engines, not `regex`'s parser, Unicode tables and NFA compiler,
//! which were more than half of a module's code and so of the time a host
//! takes to compile it. A bad pattern is a compile error that names it.
//! Any other expression is left to be compiled when the module starts.

mod table;

use proc_macro::TokenStream;
use proc_macro2::{TokenStream as Tokens, TokenTree};
use quote::quote;
use syn::{Expr, Lit};

/// `pattern!($crate, expr)`: a `$crate::Pattern`, from a table when `expr`
/// is a string literal.
#[proc_macro]
#[doc(hidden)]
pub fn pattern(input: TokenStream) -> TokenStream {
    expand(input.into()).into()
}

fn expand(input: Tokens) -> Tokens {
    let mut tokens = input.into_iter();
    let krate: Tokens = tokens
        .by_ref()
        .take_while(|tree| !matches!(tree, TokenTree::Punct(p) if p.as_char() == ','))
        .collect();
    let rest: Tokens = tokens.collect();
    let expr: Expr = match syn::parse2(rest) {
        Ok(expr) => expr,
        Err(err) => return err.to_compile_error(),
    };
    let Some(literal) = string_literal(&expr) else {
        return quote! { #krate::Pattern::from(#expr) };
    };
    let source = literal.value();
    match table::compile(&source) {
        Ok(compiled) => {
            let numbers = compiled.numbers;
            let names = compiled.names;
            quote! {
                #krate::Pattern::precompiled(#source, &[#(#numbers),*], &[#(#names),*])
            }
        }
        Err(why) => syn::Error::new(
            literal.span(),
            format!("route pattern {source:?} is not a valid regex: {why}"),
        )
        .to_compile_error(),
    }
}

/// The string literal `expr` is, through the invisible groups and
/// parentheses a `macro_rules!` fragment may wrap it in.
fn string_literal(expr: &Expr) -> Option<&syn::LitStr> {
    match expr {
        Expr::Lit(lit) => match &lit.lit {
            Lit::Str(s) => Some(s),
            _ => None,
        },
        Expr::Group(group) => string_literal(&group.expr),
        Expr::Paren(paren) => string_literal(&paren.expr),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expanded(input: &str) -> String {
        let tokens: Tokens = input.parse().expect("test input tokenises");
        expand(tokens).to_string()
    }

    #[test]
    fn a_literal_becomes_a_table() {
        let out = expanded(r#"krate, r"^/u/(?P<id>\d+)$""#);
        assert!(out.contains("krate :: Pattern :: precompiled"), "{out}");
        assert!(out.contains("\"id\""), "{out}");
    }

    #[test]
    fn other_expressions_compile_at_start_up() {
        let out = expanded("krate, PREFIX");
        assert!(out.contains("krate :: Pattern :: from (PREFIX)"), "{out}");
        let out = expanded(r#"krate, format!("^/{}$", name)"#);
        assert!(out.contains("Pattern :: from (format !"), "{out}");
    }

    #[test]
    fn a_bad_literal_is_a_compile_error_naming_it() {
        for bad in [r#""^/(unclosed$""#, r#""[z-a]""#, r#""\\p{NoSuchClass}""#] {
            let out = expanded(&format!("krate, {bad}"));
            assert!(out.contains("compile_error"), "{bad}: {out}");
            assert!(out.contains("is not a valid regex"), "{bad}: {out}");
        }
    }

    #[test]
    fn a_non_expression_is_a_compile_error() {
        let out = expanded("krate, +");
        assert!(out.contains("compile_error"), "{out}");
    }
}
