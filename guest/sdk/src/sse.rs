//! Server-sent events (the HTML standard's `text/event-stream`): events
//! with a type, an id and data of any number of lines, a reconnection
//! delay, and comments, which keep a quiet stream alive through proxies
//! and the host's idle timeout.

use crate::body::{BodyWriter, Closed};

/// One event. Data may hold several lines; each becomes its own `data:`
/// field, and the client joins them back with `\n`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Event {
    event: Option<String>,
    id: Option<String>,
    data: String,
}

impl Event {
    /// An event of the default type, `message`, carrying `data`.
    pub fn new(data: impl Into<String>) -> Self {
        Event {
            data: data.into(),
            ..Event::default()
        }
    }

    /// Sets the event's type (its `event:` field).
    pub fn event(mut self, name: impl Into<String>) -> Self {
        self.event = Some(name.into());
        self
    }

    /// Sets the event's id, which a reconnecting client sends back as
    /// `Last-Event-ID`.
    pub fn id(mut self, id: impl Into<String>) -> Self {
        self.id = Some(id.into());
        self
    }

    /// The event as it goes on the wire. Line breaks in the type or id,
    /// which would end the field early, become spaces; a NUL in an id
    /// makes the client ignore it, so it is dropped.
    pub fn encode(&self) -> String {
        let mut out = String::with_capacity(self.data.len() + 16);
        if let Some(event) = &self.event {
            field(&mut out, "event", &one_line(event));
        }
        if let Some(id) = &self.id {
            field(&mut out, "id", &one_line(id).replace('\0', ""));
        }
        for line in lines(&self.data) {
            field(&mut out, "data", line);
        }
        out.push('\n');
        out
    }
}

/// Lines as the event-stream format splits them: at CRLF, CR or LF.
fn lines(text: &str) -> impl Iterator<Item = &str> {
    let mut rest = Some(text);
    std::iter::from_fn(move || {
        let text = rest?;
        match text.find(['\r', '\n']) {
            Some(at) => {
                let skip = if text[at..].starts_with("\r\n") { 2 } else { 1 };
                rest = Some(&text[at + skip..]);
                Some(&text[..at])
            }
            None => {
                rest = None;
                Some(text)
            }
        }
    })
}

fn one_line(text: &str) -> String {
    text.replace(['\r', '\n'], " ")
}

fn field(out: &mut String, name: &str, value: &str) {
    out.push_str(name);
    out.push_str(": ");
    out.push_str(value);
    out.push('\n');
}

/// Writes events to a [`Response::sse`](crate::Response::sse) stream.
#[derive(Debug)]
pub struct EventWriter {
    body: BodyWriter,
}

impl EventWriter {
    pub(crate) fn new(body: BodyWriter) -> Self {
        EventWriter { body }
    }

    /// Sends `event`; finishes once the host has taken it.
    pub async fn send(&mut self, event: Event) -> Result<(), Closed> {
        self.body.write(event.encode()).await
    }

    /// Sends a comment line, which clients ignore: a keep-alive.
    pub async fn comment(&mut self, text: &str) -> Result<(), Closed> {
        let mut out = String::with_capacity(text.len() + 4);
        for line in lines(text) {
            out.push_str(": ");
            out.push_str(line);
            out.push('\n');
        }
        out.push('\n');
        self.body.write(out).await
    }

    /// Tells the client how long to wait before reconnecting.
    pub async fn retry(&mut self, after: std::time::Duration) -> Result<(), Closed> {
        self.body
            .write(format!("retry: {}\n\n", after.as_millis()))
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_encode_every_field_and_split_data_lines() {
        let event = Event::new("one\ntwo\r\nthree\rfour").event("tick").id("7");
        assert_eq!(
            event.encode(),
            "event: tick\nid: 7\ndata: one\ndata: two\ndata: three\ndata: four\n\n"
        );
        assert_eq!(Event::new("").encode(), "data: \n\n");
    }

    #[test]
    fn hostile_types_and_ids_cannot_inject_fields() {
        let event = Event::new("x")
            .event("a\ndata: injected")
            .id("1\r\nevent: evil\0");
        assert_eq!(
            event.encode(),
            "event: a data: injected\nid: 1  event: evil\ndata: x\n\n"
        );
    }
}
