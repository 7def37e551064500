//! `app!`: the route table that becomes the module's `handler` export.

#[cfg(not(feature = "wasi-http"))]
use crate::bindings::snow::http::types as wit;
#[cfg(not(feature = "wasi-http"))]
use crate::{boundary, executor, Router};

/// Declares the module's routes and exports them as `snow:http/handler`.
///
/// Each entry is `(pattern, handler)` or `(pattern, handler, methods)`,
/// where `methods` is one method (`"POST"`) or a list (`["GET", "HEAD"]`);
/// without it a route serves GET (and HEAD), and `[]` serves any method.
/// Handlers are `fn(Request) -> impl IntoResponse` or the `async fn` form.
/// A pattern written as a string literal is compiled with the module, and
/// a bad one fails its build; any other expression compiles when the
/// module starts.
///
/// ```
/// use std::time::Duration;
/// use snow_guest::{sleep, Request};
///
/// fn home(_: Request) -> &'static str {
///     "home"
/// }
///
/// async fn wait(_: Request) -> &'static str {
///     sleep(Duration::from_millis(10)).await;
///     "done"
/// }
///
/// fn echo(req: Request) -> Vec<u8> {
///     req.into_body()
/// }
///
/// fn user(req: Request) -> String {
///     format!("{} {:?}", req.group(1).unwrap_or("-"), req.named("tab"))
/// }
///
/// /// Not a literal: compiled when the module starts.
/// const USER: &str = r"^/user/(\d+)(?:/(?P<tab>[a-z]+))?$";
///
/// snow_guest::app!([
///     (r"^/home/$", home),
///     (r"^/async/$", wait),
///     (r"^/echo/$", echo, "POST"),
///     (r"^/either/$", echo, ["PUT", "PATCH"]),
///     (r"^/u/(\d+)(?:/(?P<tab>[a-z]+))?$", user),
///     (USER, user),
/// ]);
/// assert_eq!(app().routes().len(), 6);
/// assert_eq!(app().routes()[5].pattern(), USER);
/// let client = snow_guest::testing::Client::new(app());
/// for prefix in ["/u", "/user"] {
///     assert_eq!(client.get(&format!("{prefix}/7/posts")).body(), br#"7 Some("posts")"#);
///     assert_eq!(client.get(&format!("{prefix}/7")).body(), b"7 None");
///     assert_eq!(client.get(&format!("{prefix}/x")).status_code(), 404);
/// }
/// ```
///
/// Use it once per module, at the crate root or in any module. Beside the
/// export it defines `pub fn app() -> &'static Router`, the table itself,
/// which tests drive with [`testing::Client`](crate::testing::Client).
#[macro_export]
macro_rules! app {
    ([ $( ( $pattern:expr, $handler:expr $(, $methods:expr)? $(,)? ) ),* $(,)? ]) => {
        /// The route table exported by `snow_guest::app!`.
        #[doc(hidden)]
        pub struct __SnowModule;

        impl __SnowModule {
            /// Built once per instance; its regexes compile on first use.
            pub fn router() -> &'static $crate::Router {
                ::std::thread_local! {
                    static ROUTER: &'static $crate::Router = $crate::Router::new(::std::vec![
                        $( $crate::Route::new($crate::__pattern!($crate, $pattern), $handler) $( .methods($methods) )? ),*
                    ]).leak();
                }
                ROUTER.with(|router| *router)
            }
        }

        /// The route table declared by `snow_guest::app!`, for tests.
        pub fn app() -> &'static $crate::Router {
            __SnowModule::router()
        }

        $crate::__export_world!(__SnowModule);
    };
}

/// The exports of Snow's world, `snow:http/handler`, for `app!`'s module.
#[cfg(not(feature = "wasi-http"))]
#[doc(hidden)]
#[macro_export]
macro_rules! __export_world {
    ($module:ident) => {
        impl $crate::bindings::exports::snow::http::handler::Guest for $module {
            fn handle(
                id: u64,
                req: $crate::bindings::snow::http::types::Request,
            ) -> $crate::bindings::snow::http::types::Poll {
                $crate::__rt::handle(Self::router(), id, req)
            }

            fn resume(
                id: u64,
                op: u64,
                done: $crate::bindings::snow::http::types::Completion,
            ) -> $crate::bindings::snow::http::types::Poll {
                $crate::__rt::resume(id, op, done)
            }

            fn cancel(id: u64) {
                $crate::__rt::cancel(id)
            }

            fn routes() -> ::std::vec::Vec<$crate::bindings::snow::http::types::Route> {
                $crate::__rt::routes(Self::router())
            }
        }

        // Export names such as `snow:http/handler@0.2.0#handle` only link
        // on wasm32; native builds (tests) keep the impl and skip them.
        #[cfg(target_arch = "wasm32")]
        $crate::bindings::__export_module!($module with_types_in $crate::bindings);
    };
}

/// With the `wasi-http` feature: the standard world's one export,
/// `wasi:http/incoming-handler`, serving the same route table, and
/// `wizer-initialize`, which builds the table for a host to snapshot.
#[cfg(feature = "wasi-http")]
#[doc(hidden)]
#[macro_export]
macro_rules! __export_world {
    ($module:ident) => {
        impl $crate::__rt::wasip2::exports::http::incoming_handler::Guest for $module {
            fn handle(
                request: $crate::__rt::wasip2::http::types::IncomingRequest,
                out: $crate::__rt::wasip2::http::types::ResponseOutparam,
            ) {
                $crate::__rt::serve(Self::router(), request, out)
            }
        }

        impl $crate::init_bindings::Guest for $module {
            fn wizer_initialize() {
                $crate::__rt::start_up(Self::router());
            }
        }

        #[cfg(target_arch = "wasm32")]
        $crate::__rt::wasip2::http::proxy::export!($module);
        #[cfg(target_arch = "wasm32")]
        $crate::init_bindings::__export_initialize!($module with_types_in $crate::init_bindings);
    };
}

#[cfg(not(feature = "wasi-http"))]
/// The `handle` export: starts the handler routed for `req`.
pub fn handle(router: &'static Router, id: u64, req: wit::Request) -> wit::Poll {
    in_call(|| boundary::poll(executor::handle(router, id, boundary::request(req))))
}

#[cfg(not(feature = "wasi-http"))]
/// The `resume` export: delivers a finished host operation.
pub fn resume(id: u64, op: u64, done: wit::Completion) -> wit::Poll {
    in_call(|| boundary::poll(executor::resume(id, op, boundary::completion(done))))
}

#[cfg(not(feature = "wasi-http"))]
/// The `cancel` export: drops a request's handler.
pub fn cancel(id: u64) {
    in_call(|| executor::cancel(id))
}

#[cfg(not(feature = "wasi-http"))]
/// The `routes` export: the route table as the host lists it. The host
/// calls it once when it deploys the module, so it also compiles the
/// regexes: a bad pattern fails the deploy, not a request, and a module
/// the host pre-initialises starts every fresh instance with them compiled.
pub fn routes(router: &Router) -> Vec<wit::Route> {
    in_call(|| {
        crate::start_up::start_up(router);
        router.routes().iter().map(boundary::route).collect()
    })
}

#[cfg(not(feature = "wasi-http"))]
/// Runs an export's body as a call for the allocator (see `alloc`): what
/// imports return meanwhile is the standard allocator's.
fn in_call<R>(body: impl FnOnce() -> R) -> R {
    crate::alloc::set_in_call(true);
    let result = body();
    crate::alloc::set_in_call(false);
    result
}
