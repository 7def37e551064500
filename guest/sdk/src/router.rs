//! First-match regex routing, as in the original route tables: the first
//! route whose regex matches the path and whose methods include the
//! request's wins; a path that only other methods match answers 405 with
//! `allow`, anything else 404. HEAD is served by GET routes (the body is
//! left in the response; the host drops it on the wire).

use std::cell::{OnceCell, RefCell};

use crate::groups::Groups;
use crate::handler::Outcome;
pub use crate::handler::{streaming, Streaming};
use crate::matcher::{Cache, Matcher};
use crate::pattern::Pattern;
use crate::{Handler, IntoMethods, IntoResponse, Request, Response};

type ErasedHandler = Box<dyn Fn(Request) -> Outcome>;

/// The longest body a route reads whole before its handler runs, unless
/// [`Route::max_body`] says otherwise.
pub const DEFAULT_MAX_BODY: u64 = 10 * 1024 * 1024;

/// One entry of the table.
pub struct Route {
    pattern: Pattern,
    methods: Vec<String>,
    handler: ErasedHandler,
    /// The most a whole body may hold; `None` for a streaming handler.
    max_body: Option<u64>,
}

impl Route {
    /// A route for GET (and so HEAD); change it with `methods`. `app!`
    /// compiles a literal pattern when the module is built; any other
    /// pattern compiles when the module starts.
    pub fn new<M, H: Handler<M>>(pattern: impl Into<Pattern>, handler: H) -> Self {
        let max_body = (!handler.streams_body()).then_some(DEFAULT_MAX_BODY);
        Route {
            pattern: pattern.into(),
            methods: vec!["GET".to_owned()],
            handler: Box::new(move |req| handler.call(req)),
            max_body,
        }
    }

    /// The longest body the route's handler receives whole; a longer one
    /// is answered 413 before the handler runs. No effect on a
    /// [`streaming`] handler, which reads what the host lets through.
    pub fn max_body(mut self, bytes: u64) -> Self {
        if self.max_body.is_some() {
            self.max_body = Some(bytes);
        }
        self
    }

    /// Replaces the accepted methods; an empty list accepts any.
    pub fn methods(mut self, methods: impl IntoMethods) -> Self {
        self.methods = methods.into_methods();
        self
    }

    /// The regular expression matched against the path.
    pub fn pattern(&self) -> &str {
        self.pattern.as_str()
    }

    /// The accepted methods as declared; empty means any.
    pub fn allowed_methods(&self) -> &[String] {
        &self.methods
    }

    fn accepts(&self, method: &str) -> bool {
        self.methods.is_empty()
            || self.methods.iter().any(|m| m == method)
            || (method == "HEAD" && self.methods.iter().any(|m| m == "GET"))
    }
}

/// A route table. Its search engines are built on first use, once per
/// instance, from the NFAs its patterns compiled to.
pub struct Router {
    routes: Vec<Route>,
    compiled: OnceCell<Vec<Compiled>>,
    /// One search cache per regex. `regex`'s shared cache pool would make
    /// them on the first request and give the instance a thread id then,
    /// a counter in static memory; these are made once, when start-up
    /// says, and only the router uses them, only while it matches.
    caches: RefCell<Vec<Cache>>,
}

impl Router {
    /// A router over `routes`, tried in order; the first match wins.
    pub fn new(routes: Vec<Route>) -> Self {
        Router {
            routes,
            compiled: OnceCell::new(),
            caches: RefCell::new(Vec::new()),
        }
    }

    /// Routers live as long as the instance; requests borrow their regexes
    /// for named captures, hence `'static`.
    pub fn leak(self) -> &'static Router {
        Box::leak(Box::new(self))
    }

    /// The routes, in order.
    pub fn routes(&self) -> &[Route] {
        &self.routes
    }

    /// Compiles the regexes now rather than on the first request.
    pub fn prepare(&self) {
        self.matchers();
    }

    /// Makes the regexes' search caches now rather than on the first
    /// request: start-up does it last, so that they lie beside the memory
    /// requests allocate.
    pub(crate) fn make_caches(&self) {
        let mut caches = self.caches.borrow_mut();
        if caches.is_empty() {
            *caches = self
                .matchers()
                .iter()
                .map(|compiled| compiled.matcher.create_cache())
                .collect();
        }
    }

    /// A bad pattern is a bug in the module, not in the request: it traps
    /// on first use with the pattern named, and the host reports the trap.
    fn matchers(&self) -> &[Compiled] {
        self.compiled.get_or_init(|| {
            self.routes
                .iter()
                .map(|route| Compiled {
                    matcher: compile(&route.pattern),
                    exact: exact_text(route.pattern()),
                })
                .collect()
        })
    }

    /// The first route whose regex matches `req`'s path and whose methods
    /// take its method, with its groups; otherwise the methods the
    /// matching routes take (none: no route matches).
    fn find(&'static self, req: &Request) -> Result<(&'static Route, Groups), Vec<&'static str>> {
        self.make_caches();
        let mut caches = self.caches.borrow_mut();
        let mut allow: Vec<&str> = Vec::new();
        let tried = self
            .routes
            .iter()
            .zip(self.matchers())
            .zip(caches.iter_mut());
        for ((route, compiled), cache) in tried {
            let groups = match &compiled.exact {
                Some(text) => {
                    (req.path() == &**text).then(|| Groups::whole(&compiled.matcher, text.len()))
                }
                None => Groups::search(&compiled.matcher, cache, req.path()),
            };
            let Some(groups) = groups else {
                continue;
            };
            if route.accepts(req.method()) {
                return Ok((route, groups));
            }
            for method in &route.methods {
                add_allowed(&mut allow, method);
                if method == "GET" {
                    add_allowed(&mut allow, "HEAD");
                }
            }
        }
        Err(allow)
    }

    /// Routes `req` and calls the handler; a future it returns is not yet
    /// polled.
    pub(crate) fn dispatch(&'static self, mut req: Request) -> Outcome {
        let allow = match self.find(&req) {
            Ok((route, groups)) => {
                req.set_captures(groups);
                return match route.max_body {
                    Some(limit) if !req.body_complete() => whole_body_first(route, req, limit),
                    _ => (route.handler)(req),
                };
            }
            Err(allow) => allow,
        };
        Outcome::Ready(if allow.is_empty() {
            Response::not_found()
        } else {
            Response::method_not_allowed(allow)
        })
    }
}

/// A route's compiled pattern.
struct Compiled {
    matcher: Matcher,
    /// The one path the pattern matches, when it is `^text$` with no
    /// metacharacter in `text` (`^/home/$`): a comparison answers for it,
    /// a tenth of the regex search's time.
    exact: Option<Box<str>>,
}

/// `text` of a pattern `^text$` free of `regex`'s metacharacters (the
/// set its syntax reserves, whatever their meaning in context): such a
/// pattern matches `text` and nothing else.
fn exact_text(pattern: &str) -> Option<Box<str>> {
    const META: &str = r"\.+*?()|[]{}^$#&-~";
    let text = pattern.strip_prefix('^')?.strip_suffix('$')?;
    let plain = !text.chars().any(|c| META.contains(c) || c.is_whitespace());
    plain.then(|| text.into())
}

/// A route's search engines.
fn compile(pattern: &Pattern) -> Matcher {
    Matcher::new(pattern).unwrap_or_else(|err| {
        panic!(
            "snow: route pattern {:?} is not a valid regex: {err}",
            pattern.as_str()
        )
    })
}

/// Reads the rest of `req`'s body, up to `limit`, before calling the
/// route's handler: 413 past the limit, 400 when the body breaks off.
fn whole_body_first(route: &'static Route, mut req: Request, limit: u64) -> Outcome {
    Outcome::Pending(Box::pin(async move {
        let body = match req.body_stream().collect(limit).await {
            Ok(body) => body,
            Err(err) => return crate::Error::from(err).into_response(),
        };
        match (route.handler)(req.with_body(body)) {
            Outcome::Ready(response) => response,
            Outcome::Pending(future) => future.await,
        }
    }))
}

fn add_allowed<'a>(allow: &mut Vec<&'a str>, method: &'a str) {
    if !allow.contains(&method) {
        allow.push(method);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ready(outcome: Outcome) -> Response {
        match outcome {
            Outcome::Ready(response) => response,
            Outcome::Pending(_) => panic!("expected a plain handler"),
        }
    }

    fn home(_: Request) -> &'static str {
        "home"
    }

    fn echo(req: Request) -> Vec<u8> {
        req.into_body()
    }

    fn captures(req: Request) -> String {
        format!(
            "{}:{}",
            req.group(1).unwrap_or("-"),
            req.named("name").unwrap_or("-")
        )
    }

    async fn later(_: Request) -> &'static str {
        "later"
    }

    fn router() -> &'static Router {
        Router::new(vec![
            Route::new(r"^/home/$", home),
            Route::new(r"^/echo/$", echo).methods("POST"),
            Route::new(r"^/echo/$", home).methods(["PUT", "PATCH"]),
            Route::new(r"^/c/(\d+)/(?P<name>[a-z]+)/$", captures),
            Route::new(r"^/any/$", home).methods([]),
            Route::new(r"^/async/$", later),
            Route::new(r"^/", |_: Request| "fallback").methods("DELETE"),
        ])
        .leak()
    }

    #[test]
    fn first_match_wins() {
        let router = router();
        let response = ready(router.dispatch(Request::new("GET", "/home/")));
        assert_eq!(response.body(), b"home");
        let response = ready(router.dispatch(Request::new("DELETE", "/home/")));
        assert_eq!(response.body(), b"fallback");
    }

    #[test]
    fn head_uses_get_routes() {
        let response = ready(router().dispatch(Request::new("HEAD", "/home/")));
        assert_eq!(response.status_code(), 200);
    }

    #[test]
    fn methods_are_checked() {
        let router = router();
        let response = ready(router.dispatch(Request::new("POST", "/echo/").with_body("x")));
        assert_eq!(response.body(), b"x");
        let response = ready(router.dispatch(Request::new("GET", "/echo/")));
        assert_eq!(response.status_code(), 405);
        assert_eq!(
            response.header("allow"),
            Some(&b"POST, PUT, PATCH, DELETE"[..])
        );
        let response = ready(router.dispatch(Request::new("POST", "/home/")));
        assert_eq!(response.header("allow"), Some(&b"GET, HEAD, DELETE"[..]));
    }

    #[test]
    fn empty_method_list_accepts_any() {
        let response = ready(router().dispatch(Request::new("BREW", "/any/")));
        assert_eq!(response.status_code(), 200);
    }

    #[test]
    fn unknown_path_is_404() {
        let response = ready(router().dispatch(Request::new("GET", "nowhere")));
        assert_eq!(response.status_code(), 404);
        assert_eq!(response.body(), b"not found");
    }

    #[test]
    fn captures_reach_the_handler() {
        let response = ready(router().dispatch(Request::new("GET", "/c/12/abc/")));
        assert_eq!(response.body(), b"12:abc");
    }

    #[test]
    fn the_shared_caches_leave_nothing_between_requests() {
        let router = router();
        for (path, want) in [
            ("/c/12/abc/", "12:abc"),
            ("/c/7/z/", "7:z"),
            ("/c/123456789/longername/", "123456789:longername"),
            ("/c/1/x/", "1:x"),
        ] {
            let response = ready(router.dispatch(Request::new("GET", path)));
            assert_eq!(response.body(), want.as_bytes(), "{path}");
            let missed = ready(router.dispatch(Request::new("GET", &path[1..])));
            assert_eq!(missed.status_code(), 404, "{path}");
        }
    }

    #[test]
    fn plain_patterns_match_their_text_alone() {
        let router = Router::new(vec![
            Route::new(r"^/home/$", captures),
            Route::new(r"^/a.c/$", |_: Request| "dot"),
            Route::new(r"^/x-y/$", |_: Request| "dash"),
            Route::new(r"^/é/$", |_: Request| "accent"),
        ])
        .leak();
        let body = |path: &str| {
            ready(router.dispatch(Request::new("GET", path)))
                .body()
                .to_vec()
        };
        assert_eq!(body("/home/"), b"-:-");
        for miss in ["/home", "/home/x", "x/home/", "/HOME/", "", "/home/\n"] {
            assert_eq!(body(miss), b"not found", "{miss:?}");
        }
        assert_eq!(body("/abc/"), b"dot", "a metacharacter keeps its meaning");
        assert_eq!(body("/a.c/"), b"dot");
        assert_eq!(body("/x-y/"), b"dash");
        assert_eq!(body("/é/"), b"accent");
        assert_eq!(exact_text(r"^/home/$").as_deref(), Some("/home/"));
        for pattern in [
            r"^/a.c/$",
            r"/home/$",
            r"^/home/",
            r"^/(?i)x$",
            r"^/a b$",
            r"^/\d$",
        ] {
            assert_eq!(exact_text(pattern), None, "{pattern}");
        }
    }

    #[test]
    fn exact_routes_give_the_whole_path_as_group_0() {
        let router = Router::new(vec![Route::new(r"^/p/$", |req: Request| {
            format!("{:?} {:?}", req.group(0), req.group(1))
        })])
        .leak();
        let response = ready(router.dispatch(Request::new("GET", "/p/")));
        assert_eq!(response.body(), br#"Some("/p/") None"#);
    }

    #[test]
    fn async_handlers_are_not_polled_by_dispatch() {
        assert!(matches!(
            router().dispatch(Request::new("GET", "/async/")),
            Outcome::Pending(_)
        ));
    }

    #[test]
    fn routes_keep_their_declaration() {
        let routes = router().routes();
        assert_eq!(routes[1].pattern(), r"^/echo/$");
        assert_eq!(routes[1].allowed_methods(), ["POST"]);
        assert!(routes[4].allowed_methods().is_empty());
    }

    #[test]
    #[should_panic(expected = "route pattern \"^/(unclosed/$\" is not a valid regex")]
    fn bad_pattern_panics_with_its_name() {
        let router = Router::new(vec![Route::new(r"^/(unclosed/$", home)]).leak();
        let _ = router.dispatch(Request::new("GET", "/"));
    }
}
