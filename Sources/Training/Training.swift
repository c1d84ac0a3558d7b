// The Training module; see the README's architecture section.
