"""One module per tab of the app: the tab's callbacks (an object holding the app's `run_loop.StudioCore`, held by
`handlers.StudioApp` as `generate_tab`, `inpaint_tab`, ...) and its layout (`layout(ctx)`, called by
`ui.build_demo` inside its Blocks, which returns the tab's components for the wiring). generate, inpaint,
outpaint, upscale, vary, speed.
"""
