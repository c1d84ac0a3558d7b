// The Audit module; see the README's architecture section.
