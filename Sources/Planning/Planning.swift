// The Planning module; see the README's architecture section.
