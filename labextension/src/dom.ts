/**
 * A few DOM helpers: the panel is plain DOM updated in place (no virtual DOM, no framework), so
 * an update only writes the text and attributes that changed.
 */

/** What {@link h} accepts besides children. */
export interface IProps {
  className?: string;
  text?: string;
  title?: string;
  attrs?: Record<string, string>;
}

/** Create an element: `h('div', { className: 'x' }, child, 'text')`. */
export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  props: IProps = {},
  ...children: (Node | string)[]
): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  if (props.className) {
    node.className = props.className;
  }
  if (props.text !== undefined) {
    node.textContent = props.text;
  }
  if (props.title !== undefined) {
    node.title = props.title;
  }
  if (props.attrs) {
    for (const [name, value] of Object.entries(props.attrs)) {
      node.setAttribute(name, value);
    }
  }
  for (const child of children) {
    node.append(child);
  }
  return node;
}

/**
 * Set an element's text, touching the DOM only when it changed. An element that already holds
 * one text node gets its data changed in place: no node is created or removed, which is cheaper
 * for the browser to restyle than replacing the children.
 */
export function setText(node: HTMLElement, text: string): void {
  const child = node.firstChild;
  if (
    child !== null &&
    child === node.lastChild &&
    child.nodeType === Node.TEXT_NODE
  ) {
    const textNode = child as Text;
    if (textNode.data !== text) {
      textNode.data = text;
    }
  } else if (node.textContent !== text) {
    node.textContent = text;
  }
}

/** Set an attribute, touching the DOM only when it changed. */
export function setAttr(node: Element, name: string, value: string): void {
  if (node.getAttribute(name) !== value) {
    node.setAttribute(name, value);
  }
}

/** Add or remove a class. */
export function toggleClass(node: Element, name: string, on: boolean): void {
  if (node.classList.contains(name) !== on) {
    node.classList.toggle(name, on);
  }
}

/** Show or hide an element. */
export function setHidden(node: HTMLElement, hidden: boolean): void {
  if (node.hidden !== hidden) {
    node.hidden = hidden;
  }
}

let lastId = 0;

/** A document-unique element id, for `aria-labelledby` and `<label for>`. */
export function uniqueId(prefix: string): string {
  lastId++;
  return `gpu-devbox-${prefix}-${lastId}`;
}
