//! A valid component of another world: what a deploy of the wrong file
//! looks like. Snow must refuse it and keep serving the running version.

wit_bindgen::generate!({
    inline: "
        package other:greeter;
        world greeter {
            export greet: func(name: string) -> string;
        }
    ",
});

struct Greeter;

impl Guest for Greeter {
    fn greet(name: String) -> String {
        format!("hello, {name}")
    }
}

export!(Greeter);
