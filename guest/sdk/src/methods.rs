//! The methods a route accepts, as written in `app!`: one method, or a list;
//! an empty list accepts any method.

/// Turns `"POST"`, `["GET", "HEAD"]` or a slice into a method list.
pub trait IntoMethods {
    /// The method names, upper-cased as sent on the wire.
    fn into_methods(self) -> Vec<String>;
}

impl IntoMethods for &str {
    fn into_methods(self) -> Vec<String> {
        vec![self.to_owned()]
    }
}

impl<const N: usize> IntoMethods for [&str; N] {
    fn into_methods(self) -> Vec<String> {
        self.iter().map(|method| (*method).to_owned()).collect()
    }
}

impl IntoMethods for &[&str] {
    fn into_methods(self) -> Vec<String> {
        self.iter().map(|method| (*method).to_owned()).collect()
    }
}

impl IntoMethods for Vec<String> {
    fn into_methods(self) -> Vec<String> {
        self
    }
}
