// The cell widget's module, as anywidget loads it (`jlpm build:widget` bundles this file): the
// renderer as the default export only. A module that also exports `render` by name made
// anywidget warn in the browser console, for every widget, that a direct `render` export will
// be deprecated. Lab's run view imports `render` by name from dag.js itself.
import { render } from "./dag.js";

export default { render };
