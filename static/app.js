// The page's script; see static/index.html.
