// The Approximate module; see the README's architecture section.
