"""One module per tab of the app: the tab's callbacks (a `run_loop.StudioCore` subclass, joined into
`handlers.StudioApp`) and its layout (`layout(ctx)`, called by `ui.build_demo` inside its Blocks, which
returns the tab's components for the wiring). generate, inpaint, outpaint, upscale, speed.
"""
